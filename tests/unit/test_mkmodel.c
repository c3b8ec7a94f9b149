/*
 * test_mkmodel.c — the GGUF writer and `mkmodel`.
 *
 * The writer is checked by reading its files back with the independent
 * reader (sl_gguf_open); mkmodel's files are compared with files made by
 * llama.cpp's tools: the metadata keys and value types of
 * small-llama-F16.gguf, its general.file_type numbers per weight type, its
 * tensor table and its rope_freqs.weight (Llama 3 scaling), and the
 * vocabulary keys of ggml-vocab-*.gguf. Expected shapes are written out
 * here by hand from llama.cpp's tensor naming, not taken from the code.
 * Also replays the model fuzz corpus (tests/fuzz/corpus/model: tiny mkmodel
 * files and mutations; fuzz_model.c loads each from memory and runs what
 * loads).
 */
#include "harness.h"

#include "compute/quant.h"
#include "core/alloc.h"
#include "core/status.h"
#include "model/gguf.h"
#include "model/gguf_write.h"
#include "model/mkmodel.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_MODEL_NO_MAIN
#include "../fuzz/fuzz_model.c"

/* ---- helpers ------------------------------------------------------------- */

#define MAX_TMP 64
static char tmp_paths[MAX_TMP][64];
static int n_tmp;

static void tmp_cleanup(void) {
    for (int i = 0; i < n_tmp; i++) unlink(tmp_paths[i]);
}

/* A fresh temp file path (the file exists, empty); removed at exit. */
static const char *tmp_path(void) {
    if (n_tmp >= MAX_TMP) return NULL;
    if (n_tmp == 0) atexit(tmp_cleanup);
    char *p = tmp_paths[n_tmp];
    snprintf(p, 64, "/tmp/test_mkmodel_XXXXXX");
    int fd = mkstemp(p);
    if (fd < 0) return NULL;
    close(fd);
    n_tmp++;
    return p;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int vsize(sl_gguf_vtype t) {
    switch (t) {
    case SL_GGUF_U8: case SL_GGUF_I8: case SL_GGUF_BOOL: return 1;
    case SL_GGUF_U16: case SL_GGUF_I16: return 2;
    case SL_GGUF_U32: case SL_GGUF_I32: case SL_GGUF_F32: return 4;
    case SL_GGUF_U64: case SL_GGUF_I64: case SL_GGUF_F64: return 8;
    default: return 0;
    }
}

static bool str_eq(sl_str a, sl_str b) { return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0; }

/* Whether two entries have the same type and the same value. */
static bool kv_same(const sl_gguf_kv *a, const sl_gguf_kv *b) {
    if (a->type != b->type) return false;
    if (a->type == SL_GGUF_STRING) {
        uint64_t la = le(a->data, 8), lb = le(b->data, 8);
        return la == lb && memcmp(a->data + 8, b->data + 8, la) == 0;
    }
    if (a->type == SL_GGUF_ARRAY) {
        if (a->arr_type != b->arr_type || a->arr_n != b->arr_n) return false;
        if (a->arr_type == SL_GGUF_STRING) {
            for (uint64_t i = 0; i < a->arr_n; i++)
                if (!str_eq(sl_gguf_arr_str(a, i), sl_gguf_arr_str(b, i))) return false;
            return true;
        }
        return memcmp(a->data, b->data, a->arr_n * (uint64_t)vsize(a->arr_type)) == 0;
    }
    return memcmp(a->data, b->data, (size_t)vsize(a->type)) == 0;
}

static uint32_t kv_u32(const sl_gguf *g, const char *key) {
    const sl_gguf_kv *kv = sl_gguf_find(g, key);
    return kv && kv->type == SL_GGUF_U32 ? (uint32_t)le(kv->data, 4) : 0xdeadbeefu;
}

static float kv_f32(const sl_gguf *g, const char *key) {
    const sl_gguf_kv *kv = sl_gguf_find(g, key);
    if (!kv || kv->type != SL_GGUF_F32) return -12345.0f;
    uint32_t u = (uint32_t)le(kv->data, 4);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static bool kv_str_is(const sl_gguf *g, const char *key, const char *want) {
    const sl_gguf_kv *kv = sl_gguf_find(g, key);
    if (!kv || kv->type != SL_GGUF_STRING) return false;
    sl_str s = {(const char *)kv->data + 8, le(kv->data, 8)};
    return sl_str_eq(s, want);
}

static bool files_equal(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    char *x = sl_test_read_file(a, &la), *y = sl_test_read_file(b, &lb);
    bool eq = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return eq;
}

static sl_mkmodel_params tiny(const char *path, sl_type type) {
    sl_mkmodel_params p;
    sl_mkmodel_params_default(&p);
    p.path = path;
    p.dim = 64;
    p.n_layers = 2;
    p.n_heads = 4;
    p.n_kv_heads = 2;
    p.n_ff = 96;
    p.n_ctx = 256;
    p.type = type;
    p.n_vocab = 300;
    p.seed = 42;
    return p;
}

/* ---- writer -------------------------------------------------------------- */

static sl_status write_sample(const char *path, uint32_t alignment) {
    sl_gguf_writer *w = NULL;
    sl_status st = sl_gguf_writer_create(path, &w);
    if (st) return st;
    static const uint8_t au8[] = {0, 1, 255};
    static const int8_t ai8[] = {-128, 0, 127};
    static const uint16_t au16[] = {0, 65535};
    static const int16_t ai16[] = {-32768, 32767};
    static const uint32_t au32[] = {0, 4000000000u, 7};
    static const int32_t ai32[] = {INT32_MIN, -1, INT32_MAX};
    static const float af32[] = {1.5f, -0.0f, 3.25e-20f};
    static const bool abool[] = {true, false, true};
    static const uint64_t au64[] = {UINT64_MAX, 1};
    static const int64_t ai64[] = {INT64_MIN, INT64_MAX};
    static const double af64[] = {3.141592653589793, -1e300};
    static const char *const astr[] = {"a", "", "\xe2\x96\x81hello", "<0x0A>"};
    const int64_t ne1[1] = {40}, ne2[2] = {64, 3}, ne3[3] = {32, 2, 2}, ne4[4] = {1, 1, 1, 5};
    if ((st = sl_gguf_writer_set_u8(w, "t.u8", 200)) || (st = sl_gguf_writer_set_i8(w, "t.i8", -5)) ||
        (st = sl_gguf_writer_set_u16(w, "t.u16", 60000)) || (st = sl_gguf_writer_set_i16(w, "t.i16", -30000)) ||
        (st = sl_gguf_writer_set_u32(w, "t.u32", 3000000000u)) || (st = sl_gguf_writer_set_i32(w, "t.i32", -7)) ||
        (st = sl_gguf_writer_set_f32(w, "t.f32", 0.1f)) || (st = sl_gguf_writer_set_bool(w, "t.bool", true)) ||
        (st = sl_gguf_writer_set_str(w, "t.str", "replaced later")) ||
        (st = sl_gguf_writer_set_u64(w, "t.u64", 0x0123456789abcdefull)) ||
        (st = sl_gguf_writer_set_i64(w, "t.i64", -0x0123456789abcdefll)) ||
        (st = sl_gguf_writer_set_f64(w, "t.f64", -2.5e-300)) ||
        (st = sl_gguf_writer_set_strn(w, "t.strn", "a\0b", 3)) ||
        (st = sl_gguf_writer_set_str(w, "t.empty", "")) ||
        (st = sl_gguf_writer_set_arr(w, "a.u8", SL_GGUF_U8, au8, 3)) ||
        (st = sl_gguf_writer_set_arr(w, "a.i8", SL_GGUF_I8, ai8, 3)) ||
        (st = sl_gguf_writer_set_arr(w, "a.u16", SL_GGUF_U16, au16, 2)) ||
        (st = sl_gguf_writer_set_arr(w, "a.i16", SL_GGUF_I16, ai16, 2)) ||
        (st = sl_gguf_writer_set_arr(w, "a.u32", SL_GGUF_U32, au32, 3)) ||
        (st = sl_gguf_writer_set_arr(w, "a.i32", SL_GGUF_I32, ai32, 3)) ||
        (st = sl_gguf_writer_set_arr(w, "a.f32", SL_GGUF_F32, af32, 3)) ||
        (st = sl_gguf_writer_set_arr(w, "a.bool", SL_GGUF_BOOL, abool, 3)) ||
        (st = sl_gguf_writer_set_arr(w, "a.u64", SL_GGUF_U64, au64, 2)) ||
        (st = sl_gguf_writer_set_arr(w, "a.i64", SL_GGUF_I64, ai64, 2)) ||
        (st = sl_gguf_writer_set_arr(w, "a.f64", SL_GGUF_F64, af64, 2)) ||
        (st = sl_gguf_writer_set_arr(w, "a.none", SL_GGUF_I32, NULL, 0)) ||
        (st = sl_gguf_writer_set_arr_str(w, "a.str", astr, 4)) ||
        (st = sl_gguf_writer_set_str(w, "t.str", "final \xe2\x96\x81 value")))
        goto out;
    if (alignment && (st = sl_gguf_writer_set_u32(w, "general.alignment", alignment))) goto out;
    if ((st = sl_gguf_writer_add_tensor(w, "vec", 1, ne1, SL_TYPE_F32)) ||
        (st = sl_gguf_writer_add_tensor(w, "mat.f16", 2, ne2, SL_TYPE_F16)) ||
        (st = sl_gguf_writer_add_tensor(w, "cube.q8_0", 3, ne3, SL_TYPE_Q8_0)) ||
        (st = sl_gguf_writer_add_tensor(w, "four.i8", 4, ne4, SL_TYPE_I8)))
        goto out;
    if ((st = sl_gguf_writer_begin_data(w))) goto out;
    /* data: byte k of tensor t is (t * 31 + k) & 255, written in odd chunks */
    for (int64_t t = 0; t < sl_gguf_writer_n_tensors(w) && !st; t++) {
        uint64_t n = sl_gguf_writer_tensor_nbytes(w, t);
        uint8_t chunk[7];
        for (uint64_t k = 0; k < n && !st; k += sizeof chunk) {
            size_t m = n - k < sizeof chunk ? (size_t)(n - k) : sizeof chunk;
            for (size_t j = 0; j < m; j++) chunk[j] = (uint8_t)(t * 31 + (int64_t)(k + j));
            st = sl_gguf_writer_write(w, chunk, m);
        }
    }
    if (!st) st = sl_gguf_writer_finish(w);
out:
    sl_gguf_writer_destroy(w);
    return st;
}

static void check_sample(const char *path, uint32_t alignment) {
    sl_gguf *g = NULL;
    CHECK_OK(sl_gguf_open(path, &g));
    CHECK_EQ_INT(sl_gguf_version(g), 3);
    CHECK_EQ_INT(sl_gguf_alignment(g), alignment ? alignment : 32);
    CHECK_EQ_INT(sl_gguf_n_kv(g), 27 + (alignment ? 1 : 0));
    /* keys in the order they were first set; t.str replaced in place */
    CHECK(sl_str_eq(sl_gguf_kv_at(g, 0)->key, "t.u8"));
    CHECK(sl_str_eq(sl_gguf_kv_at(g, 8)->key, "t.str"));
    CHECK(kv_str_is(g, "t.str", "final \xe2\x96\x81 value"));
    const sl_gguf_kv *kv;
    struct { const char *key; sl_gguf_vtype t; uint64_t bits; } sc[] = {
        {"t.u8", SL_GGUF_U8, 200},
        {"t.i8", SL_GGUF_I8, 0xfb},
        {"t.u16", SL_GGUF_U16, 60000},
        {"t.i16", SL_GGUF_I16, (uint16_t)-30000},
        {"t.u32", SL_GGUF_U32, 3000000000u},
        {"t.i32", SL_GGUF_I32, (uint32_t)-7},
        {"t.f32", SL_GGUF_F32, 0x3dcccccdu}, /* 0.1f */
        {"t.bool", SL_GGUF_BOOL, 1},
        {"t.u64", SL_GGUF_U64, 0x0123456789abcdefull},
        {"t.i64", SL_GGUF_I64, (uint64_t)-0x0123456789abcdefll},
    };
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        kv = sl_gguf_find(g, sc[i].key);
        CHECK_MSG(kv && kv->type == sc[i].t, "key %s: missing or type %d", sc[i].key, kv ? (int)kv->type : -1);
        CHECK_MSG(le(kv->data, vsize(kv->type)) == sc[i].bits, "key %s: 0x%llx != 0x%llx", sc[i].key,
                  (unsigned long long)le(kv->data, vsize(kv->type)), (unsigned long long)sc[i].bits);
    }
    kv = sl_gguf_find(g, "t.f64");
    CHECK(kv && kv->type == SL_GGUF_F64);
    double d;
    uint64_t u = le(kv->data, 8);
    memcpy(&d, &u, 8);
    CHECK(d == -2.5e-300);
    kv = sl_gguf_find(g, "t.strn");
    CHECK(kv && kv->type == SL_GGUF_STRING && le(kv->data, 8) == 3 && memcmp(kv->data + 8, "a\0b", 3) == 0);
    CHECK(kv_str_is(g, "t.empty", ""));

    float f32;
    CHECK_OK(sl_gguf_get_f32(g, "t.f32", &f32));
    CHECK(f32 == 0.1f);
    uint32_t u32;
    CHECK_OK(sl_gguf_get_u32(g, "t.u32", &u32));
    CHECK_EQ_INT(u32, 3000000000u);

    struct { const char *key; sl_gguf_vtype t; uint64_t n; int64_t v[4]; } ar[] = {
        {"a.u8", SL_GGUF_U8, 3, {0, 1, 255}},
        {"a.i8", SL_GGUF_I8, 3, {-128, 0, 127}},
        {"a.u16", SL_GGUF_U16, 2, {0, 65535}},
        {"a.i16", SL_GGUF_I16, 2, {-32768, 32767}},
        {"a.u32", SL_GGUF_U32, 3, {0, 4000000000ll, 7}},
        {"a.i32", SL_GGUF_I32, 3, {INT32_MIN, -1, INT32_MAX}},
        {"a.i64", SL_GGUF_I64, 2, {INT64_MIN, INT64_MAX}},
        {"a.none", SL_GGUF_I32, 0, {0}},
    };
    for (size_t i = 0; i < sizeof ar / sizeof ar[0]; i++) {
        sl_gguf_vtype et;
        uint64_t n;
        CHECK_OK(sl_gguf_get_arr(g, ar[i].key, &et, &n, &kv));
        CHECK_MSG(et == ar[i].t && n == ar[i].n, "array %s: type %d n %llu", ar[i].key, (int)et,
                  (unsigned long long)n);
        for (uint64_t k = 0; k < n; k++)
            CHECK_MSG(sl_gguf_arr_int(kv, k) == ar[i].v[k], "array %s[%llu]: %lld != %lld", ar[i].key,
                      (unsigned long long)k, (long long)sl_gguf_arr_int(kv, k), (long long)ar[i].v[k]);
    }
    sl_gguf_vtype et;
    uint64_t n;
    CHECK_OK(sl_gguf_get_arr(g, "a.u64", &et, &n, &kv));
    CHECK(et == SL_GGUF_U64 && n == 2 && le(kv->data, 8) == UINT64_MAX && le(kv->data + 8, 8) == 1);
    CHECK_OK(sl_gguf_get_arr(g, "a.f32", &et, &n, &kv));
    CHECK(et == SL_GGUF_F32 && n == 3);
    CHECK(sl_gguf_arr_f32(kv, 0) == 1.5f && sl_gguf_arr_f32(kv, 1) == 0.0f && signbit(sl_gguf_arr_f32(kv, 1)) &&
          sl_gguf_arr_f32(kv, 2) == 3.25e-20f);
    CHECK_OK(sl_gguf_get_arr(g, "a.bool", &et, &n, &kv));
    CHECK(et == SL_GGUF_BOOL && n == 3 && kv->data[0] == 1 && kv->data[1] == 0 && kv->data[2] == 1);
    CHECK_OK(sl_gguf_get_arr(g, "a.f64", &et, &n, &kv));
    CHECK(et == SL_GGUF_F64 && n == 2);
    u = le(kv->data, 8);
    memcpy(&d, &u, 8);
    CHECK(d == 3.141592653589793);
    u = le(kv->data + 8, 8);
    memcpy(&d, &u, 8);
    CHECK(d == -1e300);
    CHECK_OK(sl_gguf_get_arr(g, "a.str", &et, &n, &kv));
    CHECK(et == SL_GGUF_STRING && n == 4);
    CHECK(sl_str_eq(sl_gguf_arr_str(kv, 0), "a") && sl_str_eq(sl_gguf_arr_str(kv, 1), "") &&
          sl_str_eq(sl_gguf_arr_str(kv, 2), "\xe2\x96\x81hello") && sl_str_eq(sl_gguf_arr_str(kv, 3), "<0x0A>"));

    /* tensors: shapes, types, aligned offsets, sizes and contents */
    struct { const char *name; uint32_t nd; int64_t ne[4]; sl_type t; uint64_t nbytes; } ts[] = {
        {"vec", 1, {40, 1, 1, 1}, SL_TYPE_F32, 160},
        {"mat.f16", 2, {64, 3, 1, 1}, SL_TYPE_F16, 384},
        {"cube.q8_0", 3, {32, 2, 2, 1}, SL_TYPE_Q8_0, 4 * 34},
        {"four.i8", 4, {1, 1, 1, 5}, SL_TYPE_I8, 5},
    };
    CHECK_EQ_INT(sl_gguf_n_tensors(g), 4);
    uint32_t al = sl_gguf_alignment(g);
    CHECK_EQ_INT(sl_gguf_data_offset(g) % al, 0);
    uint64_t expect_off = 0;
    for (int i = 0; i < 4; i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        CHECK(sl_str_eq(t->name, ts[i].name));
        CHECK_EQ_INT(t->n_dims, ts[i].nd);
        for (int dd = 0; dd < 4; dd++) CHECK_EQ_INT(t->ne[dd], ts[i].ne[dd]);
        CHECK_EQ_INT(t->type, ts[i].t);
        CHECK_EQ_INT(t->nbytes, ts[i].nbytes);
        CHECK_EQ_INT(t->offset, expect_off);
        expect_off = (expect_off + t->nbytes + al - 1) / al * al;
        for (uint64_t k = 0; k < t->nbytes; k++)
            CHECK_MSG(t->data[k] == (uint8_t)(i * 31 + (int64_t)k), "tensor %s byte %llu", ts[i].name,
                      (unsigned long long)k);
    }
    /* the last tensor is padded too: the file ends on the alignment */
    CHECK_EQ_INT(sl_gguf_size(g), sl_gguf_data_offset(g) + expect_off);
    sl_gguf_close(g);
}

TEST(writer_roundtrip_all_types) {
    const char *path = tmp_path();
    CHECK(path);
    CHECK_OK(write_sample(path, 0));
    check_sample(path, 0);
    if (sl_test_failed()) return;
    /* the header starts as the spec says */
    size_t len = 0;
    char *b = sl_test_read_file(path, &len);
    CHECK(b && len > 24);
    CHECK(memcmp(b, "GGUF", 4) == 0 && le((const uint8_t *)b + 4, 4) == 3 && le((const uint8_t *)b + 8, 8) == 4 &&
          le((const uint8_t *)b + 16, 8) == 27);
    free(b);
}

TEST(writer_roundtrip_alignment_64) {
    const char *path = tmp_path();
    CHECK(path);
    CHECK_OK(write_sample(path, 64));
    check_sample(path, 64);
}

TEST(writer_rejects_misuse) {
    const char *path = tmp_path();
    CHECK(path);
    sl_gguf_writer *w = NULL;
    const int64_t ne[2] = {32, 2}, bad[2] = {30, 2}, zero[2] = {32, 0};
    CHECK_OK(sl_gguf_writer_create(path, &w));
    CHECK_EQ_INT(sl_gguf_writer_set_u32(w, "", 1), SL_ERR_INVALID);
    CHECK_EQ_INT(sl_gguf_writer_set_arr(w, "x", SL_GGUF_STRING, "x", 1), SL_ERR_INVALID);
    CHECK_EQ_INT(sl_gguf_writer_add_tensor(w, "q", 2, bad, SL_TYPE_Q8_0), SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "block size"));
    CHECK_EQ_INT(sl_gguf_writer_add_tensor(w, "z", 2, zero, SL_TYPE_F32), SL_ERR_INVALID);
    CHECK_EQ_INT(sl_gguf_writer_add_tensor(w, "", 2, ne, SL_TYPE_F32), SL_ERR_INVALID);
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = '\0';
    CHECK_EQ_INT(sl_gguf_writer_add_tensor(w, longname, 2, ne, SL_TYPE_F32), SL_ERR_INVALID);
    CHECK_EQ_INT(sl_gguf_writer_add_tensor(w, "t", 5, ne, SL_TYPE_F32), SL_ERR_INVALID);
    CHECK_OK(sl_gguf_writer_add_tensor(w, "a", 2, ne, SL_TYPE_Q8_0));
    CHECK_EQ_INT(sl_gguf_writer_add_tensor(w, "a", 2, ne, SL_TYPE_F32), SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "'a'"));
    CHECK_OK(sl_gguf_writer_add_tensor(w, "b", 1, ne, SL_TYPE_F32));
    CHECK_EQ_INT(sl_gguf_writer_tensor_nbytes(w, 0), 68);
    CHECK_OK(sl_gguf_writer_begin_data(w));
    CHECK_EQ_INT(sl_gguf_writer_set_u32(w, "late", 1), SL_ERR_INVALID); /* keys are frozen now */
    uint8_t buf[200] = {0};
    CHECK_OK(sl_gguf_writer_write(w, buf, 60));
    /* 8 bytes remain in 'a': a 9-byte write must fail and name the tensor */
    CHECK_EQ_INT(sl_gguf_writer_write(w, buf, 9), SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "'a'") && strstr(sl_last_error(), "8"));
    sl_gguf_writer_destroy(w);

    /* finishing with a tensor short names it */
    CHECK_OK(sl_gguf_writer_create(path, &w));
    CHECK_OK(sl_gguf_writer_add_tensor(w, "a", 2, ne, SL_TYPE_F32));
    CHECK_OK(sl_gguf_writer_add_tensor(w, "b", 1, ne, SL_TYPE_F32));
    CHECK_OK(sl_gguf_writer_begin_data(w));
    CHECK_OK(sl_gguf_writer_write(w, buf, 200));
    CHECK_OK(sl_gguf_writer_write(w, buf, 56)); /* 'a' complete (256 bytes) */
    CHECK_OK(sl_gguf_writer_write(w, buf, 100));
    CHECK_EQ_INT(sl_gguf_writer_finish(w), SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "'b'") && strstr(sl_last_error(), "100 of its 128"));
    sl_gguf_writer_destroy(w);

    /* alignment must be a u32 power of two */
    CHECK_OK(sl_gguf_writer_create(path, &w));
    CHECK_OK(sl_gguf_writer_set_u32(w, "general.alignment", 48));
    CHECK_EQ_INT(sl_gguf_writer_begin_data(w), SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "general.alignment"));
    sl_gguf_writer_destroy(w);
}

TEST(writer_disk_full_is_io_error) {
    if (access("/dev/full", W_OK) != 0) {
        printf("    (skipped: no /dev/full)\n");
        return;
    }
    sl_gguf_writer *w = NULL;
    const int64_t ne[2] = {1024, 1024};
    CHECK_OK(sl_gguf_writer_create("/dev/full", &w));
    CHECK_OK(sl_gguf_writer_add_tensor(w, "big", 2, ne, SL_TYPE_F32));
    sl_status st = sl_gguf_writer_begin_data(w);
    static float row[1024];
    for (int r = 0; r < 1024 && !st; r++) st = sl_gguf_writer_write(w, row, sizeof row);
    if (!st) st = sl_gguf_writer_finish(w);
    CHECK_EQ_INT(st, SL_ERR_IO);
    CHECK_MSG(strstr(sl_last_error(), "/dev/full"), "message: %s", sl_last_error());
    /* a failed writer stays failed */
    CHECK(sl_gguf_writer_write(w, row, 4) != SL_OK);
    sl_gguf_writer_destroy(w);
}

TEST(writer_copies_tokenizer_keys) {
    const char *src = sl_test_shared("golden/tokenizer/ggml-vocab-llama-bpe.gguf");
    CHECK(src);
    const char *path = tmp_path();
    CHECK(path);
    sl_gguf *g = NULL, *h = NULL;
    sl_gguf_writer *w = NULL;
    CHECK_OK(sl_gguf_open(src, &g));
    CHECK_OK(sl_gguf_writer_create(path, &w));
    CHECK_OK(sl_gguf_writer_set_str(w, "general.architecture", "llama"));
    int64_t n = 0;
    CHECK_OK(sl_gguf_writer_copy_prefix(w, g, "tokenizer.", &n));
    CHECK_OK(sl_gguf_writer_begin_data(w));
    CHECK_OK(sl_gguf_writer_finish(w));
    sl_gguf_writer_destroy(w);
    CHECK_OK(sl_gguf_open(path, &h));
    int64_t want = 0;
    for (int64_t i = 0; i < sl_gguf_n_kv(g); i++) {
        const sl_gguf_kv *a = sl_gguf_kv_at(g, i);
        if (a->key.len < 10 || memcmp(a->key.ptr, "tokenizer.", 10) != 0) continue;
        want++;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)a->key.len, a->key.ptr);
        const sl_gguf_kv *b = sl_gguf_find(h, key);
        CHECK_MSG(b && kv_same(a, b), "key %s not copied exactly", key);
    }
    CHECK(want >= 7); /* model, pre, tokens, token_type, merges, bos, eos, ... */
    CHECK_EQ_INT(n, want);
    CHECK_EQ_INT(sl_gguf_n_kv(h), want + 1);
    sl_gguf_close(g);
    sl_gguf_close(h);
}

/* ---- mkmodel ------------------------------------------------------------- */

/* Keys of the reference that record where a file came from, not what it is. */
static bool provenance(sl_str key) {
    return sl_str_eq(key, "general.name") || sl_str_eq(key, "general.description");
}

/* Every non-provenance key of `ref` is in `g` with the same type (and
 * element type); every key of `g` is in `ref`, is provenance, or is
 * general.quantization_version (which llama.cpp's quantized files carry). */
static void check_keys_like(const sl_gguf *g, const sl_gguf *ref) {
    for (int64_t i = 0; i < sl_gguf_n_kv(ref); i++) {
        const sl_gguf_kv *a = sl_gguf_kv_at(ref, i);
        if (provenance(a->key)) continue;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)a->key.len, a->key.ptr);
        const sl_gguf_kv *b = sl_gguf_find(g, key);
        CHECK_MSG(b, "key %s of the reference is missing", key);
        CHECK_MSG(a->type == b->type, "key %s: type %s, reference %s", key, sl_vtype_name(b->type),
                  sl_vtype_name(a->type));
        if (a->type == SL_GGUF_ARRAY)
            CHECK_MSG(a->arr_type == b->arr_type, "key %s: element type %s, reference %s", key,
                      sl_vtype_name(b->arr_type), sl_vtype_name(a->arr_type));
    }
    for (int64_t i = 0; i < sl_gguf_n_kv(g); i++) {
        const sl_gguf_kv *b = sl_gguf_kv_at(g, i);
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)b->key.len, b->key.ptr);
        CHECK_MSG(sl_gguf_find(ref, key) || provenance(b->key) || !strcmp(key, "general.quantization_version"),
                  "key %s is not in the reference", key);
    }
}

typedef struct exp_tensor {
    char name[64];
    uint32_t nd;
    int64_t ne0, ne1;
    sl_type type;
} exp_tensor;

/* llama.cpp's names and ggml shapes for a Llama model, written out here. */
static int expected_tensors(const sl_mkmodel_params *p, int64_t n_vocab, exp_tensor *e) {
    int n = 0;
    int64_t hd = p->dim / p->n_heads;
    sl_type f32 = SL_TYPE_F32, mt = p->type;
    e[n++] = (exp_tensor){"token_embd.weight", 2, p->dim, n_vocab, mt};
    if (p->rope_scaling == SL_ROPE_SCALING_LLAMA3) e[n++] = (exp_tensor){"rope_freqs.weight", 1, hd / 2, 1, f32};
    for (int l = 0; l < p->n_layers; l++) {
        struct { const char *s; uint32_t nd; int64_t ne0, ne1; sl_type t; } b[] = {
            {"attn_norm", 1, p->dim, 1, f32},
            {"attn_q", 2, p->dim, p->n_heads * hd, mt},
            {"attn_k", 2, p->dim, p->n_kv_heads * hd, mt},
            {"attn_v", 2, p->dim, p->n_kv_heads * hd, mt},
            {"attn_output", 2, p->n_heads * hd, p->dim, mt},
            {"ffn_norm", 1, p->dim, 1, f32},
            {"ffn_gate", 2, p->dim, p->n_ff, mt},
            {"ffn_up", 2, p->dim, p->n_ff, mt},
            {"ffn_down", 2, p->n_ff, p->dim, mt},
        };
        for (size_t k = 0; k < sizeof b / sizeof b[0]; k++) {
            snprintf(e[n].name, sizeof e[n].name, "blk.%d.%s.weight", l, b[k].s);
            e[n].nd = b[k].nd;
            e[n].ne0 = b[k].ne0;
            e[n].ne1 = b[k].ne1;
            e[n].type = b[k].t;
            n++;
        }
    }
    e[n++] = (exp_tensor){"output_norm.weight", 1, p->dim, 1, f32};
    if (!p->tied) e[n++] = (exp_tensor){"output.weight", 2, p->dim, n_vocab, mt};
    return n;
}

static void check_tensors(const sl_gguf *g, const sl_mkmodel_params *p, int64_t n_vocab) {
    exp_tensor e[64];
    int n = expected_tensors(p, n_vocab, e);
    CHECK_EQ_INT(sl_gguf_n_tensors(g), n);
    for (int i = 0; i < n; i++) {
        const sl_gguf_tensor *t = sl_gguf_find_tensor(g, e[i].name);
        CHECK_MSG(t, "tensor %s missing", e[i].name);
        CHECK_MSG(t->n_dims == e[i].nd && t->ne[0] == e[i].ne0 && t->ne[1] == e[i].ne1 && t->type == e[i].type,
                  "tensor %s: %u dims [%lld, %lld] %s, want %u dims [%lld, %lld] %s", e[i].name, t->n_dims,
                  (long long)t->ne[0], (long long)t->ne[1], sl_type_name(t->type), e[i].nd, (long long)e[i].ne0,
                  (long long)e[i].ne1, sl_type_name(e[i].type));
    }
}

/* Mean and standard deviation of a tensor's values (dequantized). */
static bool tensor_stats(const sl_gguf_tensor *t, double *mean, double *sd) {
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    size_t rb = t->nbytes / (uint64_t)rows;
    float *x = malloc((size_t)t->ne[0] * sizeof *x);
    if (!x) return false;
    double s = 0, s2 = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (!sl_dequantize_row(t->type, t->data + (size_t)r * rb, x, t->ne[0])) {
            free(x);
            return false;
        }
        for (int64_t i = 0; i < t->ne[0]; i++) {
            s += x[i];
            s2 += (double)x[i] * x[i];
        }
    }
    free(x);
    double n = (double)(rows * t->ne[0]);
    *mean = s / n;
    *sd = sqrt(fmax(0.0, s2 / n - *mean * *mean));
    return true;
}

TEST(mkmodel_every_type_keys_tensors_values) {
    const char *ref_path = sl_test_shared("models/small/small-llama-F16.gguf");
    CHECK(ref_path);
    sl_gguf *ref = NULL;
    CHECK_OK(sl_gguf_open(ref_path, &ref));
    /* general.file_type per type, as llama.cpp wrote it into its own files */
    static const struct { sl_type t; const char *ref; uint32_t ftype; } types[] = {
        {SL_TYPE_F32, NULL, 0}, /* LLAMA_FTYPE_ALL_F32 (no reference file) */
        {SL_TYPE_F16, "models/small/small-llama-F16.gguf", 1},
        {SL_TYPE_BF16, "models/small/small-llama-BF16.gguf", 32},
        {SL_TYPE_Q8_0, "models/small/small-llama-Q8_0.gguf", 7},
        {SL_TYPE_Q4_0, "models/small/small-llama-Q4_0.gguf", 2},
    };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t want_ftype = types[ti].ftype;
        if (types[ti].ref) {
            sl_gguf *r = NULL;
            CHECK(sl_test_shared(types[ti].ref));
            CHECK_OK(sl_gguf_open(sl_test_shared(types[ti].ref), &r));
            want_ftype = kv_u32(r, "general.file_type");
            if (types[ti].t != SL_TYPE_F16) CHECK_EQ_INT(kv_u32(r, "general.quantization_version"), 2);
            sl_gguf_close(r);
            CHECK_EQ_INT(want_ftype, types[ti].ftype);
        }
        const char *path = tmp_path();
        CHECK(path);
        sl_mkmodel_params p = tiny(path, types[ti].t);
        CHECK_OK(sl_mkmodel_write(&p));
        sl_gguf *g = NULL;
        CHECK_OK(sl_gguf_open(path, &g));
        check_keys_like(g, ref);
        if (sl_test_failed()) return;
        CHECK(kv_str_is(g, "general.architecture", "llama"));
        CHECK(kv_str_is(g, "general.type", "model"));
        CHECK(sl_gguf_find(g, "general.name") && sl_gguf_find(g, "general.name")->type == SL_GGUF_STRING);
        CHECK_EQ_INT(kv_u32(g, "general.file_type"), want_ftype);
        CHECK_EQ_INT(kv_u32(g, "general.quantization_version"), 2);
        CHECK_EQ_INT(kv_u32(g, "llama.context_length"), 256);
        CHECK_EQ_INT(kv_u32(g, "llama.embedding_length"), 64);
        CHECK_EQ_INT(kv_u32(g, "llama.block_count"), 2);
        CHECK_EQ_INT(kv_u32(g, "llama.feed_forward_length"), 96);
        CHECK_EQ_INT(kv_u32(g, "llama.attention.head_count"), 4);
        CHECK_EQ_INT(kv_u32(g, "llama.attention.head_count_kv"), 2);
        CHECK_EQ_INT(kv_u32(g, "llama.rope.dimension_count"), 16);
        CHECK_EQ_INT(kv_u32(g, "llama.attention.key_length"), 16);
        CHECK_EQ_INT(kv_u32(g, "llama.attention.value_length"), 16);
        CHECK_EQ_INT(kv_u32(g, "llama.vocab_size"), 300);
        CHECK(kv_f32(g, "llama.attention.layer_norm_rms_epsilon") == 1e-5f);
        CHECK(kv_f32(g, "llama.rope.freq_base") == 10000.0f);
        CHECK(kv_str_is(g, "tokenizer.ggml.model", "llama"));
        CHECK_EQ_INT(kv_u32(g, "tokenizer.ggml.bos_token_id"), 1);
        CHECK_EQ_INT(kv_u32(g, "tokenizer.ggml.eos_token_id"), 2);
        CHECK_EQ_INT(kv_u32(g, "tokenizer.ggml.unknown_token_id"), 0);
        bool b = false;
        CHECK_OK(sl_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b));
        CHECK(b);
        CHECK_OK(sl_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b));
        CHECK(!b);
        check_tensors(g, &p, 300);
        if (sl_test_failed()) return;
        /* values: norms 1 + noise (sd 0.1), matrices sd 1/sqrt(n_in), embeddings 2/sqrt(dim) */
        for (int64_t i = 0; i < sl_gguf_n_tensors(g); i++) {
            const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
            double mean = 0, sd = 0, want_sd = 1.0 / sqrt((double)t->ne[0]), want_mean = 0.0;
            char nm[64];
            snprintf(nm, sizeof nm, "%.*s", (int)t->name.len, t->name.ptr);
            if (strstr(nm, "norm")) {
                want_mean = 1.0;
                want_sd = 0.1;
            } else if (strstr(nm, "token_embd") || !strcmp(nm, "output.weight")) {
                want_sd = 2.0 / sqrt(64.0);
            }
            CHECK(tensor_stats(t, &mean, &sd));
            CHECK_MSG(fabs(mean - want_mean) < 0.25 * want_sd + 0.02 && fabs(sd / want_sd - 1.0) < 0.2,
                      "%s %s: mean %.4f sd %.4f, want %.4f and %.4f", sl_type_name(p.type), nm, mean, sd, want_mean,
                      want_sd);
        }
        sl_gguf_close(g);
    }
    sl_gguf_close(ref);
}

TEST(mkmodel_matches_small_llama_metadata_and_layout) {
    /* small-llama-F16.gguf's configuration: every non-provenance key must have
     * the same value, the tensor table must be identical (names, shapes,
     * types, offsets), and rope_freqs.weight bit-identical. */
    const char *ref_path = sl_test_shared("models/small/small-llama-F16.gguf");
    const char *vocab = sl_test_shared("golden/tokenizer/ggml-vocab-llama-spm.gguf");
    CHECK(ref_path && vocab);
    const char *path = tmp_path();
    CHECK(path);
    sl_mkmodel_params p;
    sl_mkmodel_params_default(&p);
    p.path = path;
    p.dim = 256;
    p.n_layers = 4;
    p.n_heads = 8;
    p.n_kv_heads = 2;
    p.n_ff = 768;
    p.n_ctx = 2048;
    p.type = SL_TYPE_F16;
    p.vocab_from = vocab;
    p.tied = true;
    p.rope_base = 500000.0f;
    p.rope_scaling = SL_ROPE_SCALING_LLAMA3;
    CHECK_OK(sl_mkmodel_write(&p));
    sl_gguf *g = NULL, *ref = NULL;
    CHECK_OK(sl_gguf_open(path, &g));
    CHECK_OK(sl_gguf_open(ref_path, &ref));
    check_keys_like(g, ref);
    for (int64_t i = 0; i < sl_gguf_n_kv(ref) && !sl_test_failed(); i++) {
        const sl_gguf_kv *a = sl_gguf_kv_at(ref, i);
        if (provenance(a->key)) continue;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)a->key.len, a->key.ptr);
        CHECK_MSG(kv_same(a, sl_gguf_find(g, key)), "key %s: value differs from small-llama-F16.gguf", key);
    }
    CHECK_EQ_INT(sl_gguf_n_tensors(g), sl_gguf_n_tensors(ref));
    CHECK_EQ_INT(sl_gguf_data_offset(g) % 32, 0);
    for (int64_t i = 0; i < sl_gguf_n_tensors(ref); i++) {
        const sl_gguf_tensor *a = sl_gguf_tensor_at(ref, i), *b = sl_gguf_tensor_at(g, i);
        CHECK_MSG(str_eq(a->name, b->name), "tensor %lld: %.*s, reference %.*s", (long long)i, (int)b->name.len,
                  b->name.ptr, (int)a->name.len, a->name.ptr);
        CHECK(a->n_dims == b->n_dims && a->type == b->type && a->offset == b->offset && a->nbytes == b->nbytes);
        for (int d = 0; d < 4; d++) CHECK_EQ_INT(a->ne[d], b->ne[d]);
    }
    const sl_gguf_tensor *ra = sl_gguf_find_tensor(ref, "rope_freqs.weight");
    const sl_gguf_tensor *rb = sl_gguf_find_tensor(g, "rope_freqs.weight");
    CHECK(ra && rb && ra->nbytes == 64 && rb->nbytes == 64);
    for (int i = 0; i < 16; i++) {
        float x, y;
        memcpy(&x, ra->data + 4 * i, 4);
        memcpy(&y, rb->data + 4 * i, 4);
        CHECK_MSG(x == y, "rope_freqs[%d]: %.9g, llama.cpp %.9g", i, (double)y, (double)x);
    }
    sl_gguf_close(g);
    sl_gguf_close(ref);
}

TEST(mkmodel_vocab_from_copies_tokenizer) {
    const char *src = sl_test_shared("golden/tokenizer/ggml-vocab-llama-bpe.gguf");
    CHECK(src);
    const char *path = tmp_path();
    CHECK(path);
    sl_mkmodel_params p = tiny(path, SL_TYPE_Q8_0);
    p.dim = 32;
    p.n_heads = 2;
    p.n_kv_heads = 1;
    p.n_ff = 32;
    p.n_layers = 1;
    p.vocab_from = src;
    CHECK_OK(sl_mkmodel_write(&p));
    sl_gguf *g = NULL, *s = NULL;
    CHECK_OK(sl_gguf_open(path, &g));
    CHECK_OK(sl_gguf_open(src, &s));
    int64_t n_tok = 0;
    for (int64_t i = 0; i < sl_gguf_n_kv(s); i++) {
        const sl_gguf_kv *a = sl_gguf_kv_at(s, i);
        if (a->key.len < 10 || memcmp(a->key.ptr, "tokenizer.", 10) != 0) continue;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)a->key.len, a->key.ptr);
        CHECK_MSG(kv_same(a, sl_gguf_find(g, key)), "key %s not copied exactly", key);
        if (!strcmp(key, "tokenizer.ggml.tokens")) n_tok = (int64_t)a->arr_n;
    }
    CHECK_EQ_INT(n_tok, 128256);
    CHECK_EQ_INT(kv_u32(g, "llama.vocab_size"), 128256);
    check_tensors(g, &p, 128256);
    sl_gguf_close(g);
    sl_gguf_close(s);
}

TEST(mkmodel_seed_determinism) {
    const char *a = tmp_path(), *b = tmp_path(), *c = tmp_path(), *d = tmp_path();
    CHECK(a && b && c && d);
    sl_mkmodel_params p = tiny(a, SL_TYPE_Q4_0);
    CHECK_OK(sl_mkmodel_write(&p));
    p.path = b;
    CHECK_OK(sl_mkmodel_write(&p));
    CHECK_MSG(files_equal(a, b), "same seed gave different files");
    p.path = c;
    p.seed = 43;
    CHECK_OK(sl_mkmodel_write(&p));
    p.path = d;
    p.seed = 42;
    p.tied = true;
    CHECK_OK(sl_mkmodel_write(&p));
    sl_gguf *ga = NULL, *gc = NULL, *gd = NULL;
    CHECK_OK(sl_gguf_open(a, &ga));
    CHECK_OK(sl_gguf_open(c, &gc));
    CHECK_OK(sl_gguf_open(d, &gd));
    for (int64_t i = 0; i < sl_gguf_n_tensors(ga); i++) {
        const sl_gguf_tensor *x = sl_gguf_tensor_at(ga, i);
        char nm[64];
        snprintf(nm, sizeof nm, "%.*s", (int)x->name.len, x->name.ptr);
        const sl_gguf_tensor *y = sl_gguf_find_tensor(gc, nm), *z = sl_gguf_find_tensor(gd, nm);
        CHECK(y && y->nbytes == x->nbytes);
        CHECK_MSG(memcmp(x->data, y->data, x->nbytes) != 0, "tensor %s identical with another seed", nm);
        /* a tensor depends on seed, name and shape only: --tied changes nothing else */
        if (strcmp(nm, "output.weight") != 0) {
            CHECK_MSG(z && z->nbytes == x->nbytes && memcmp(x->data, z->data, x->nbytes) == 0,
                      "tensor %s differs with --tied", nm);
        } else {
            CHECK(!z);
        }
    }
    sl_gguf_close(ga);
    sl_gguf_close(gc);
    sl_gguf_close(gd);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether s is non-empty, valid UTF-8 (no overlongs, no surrogates). */
static bool valid_utf8(const uint8_t *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        int k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (k < 0 || n - i <= (size_t)k) return false;
        uint32_t cp = k == 0 ? c : (uint32_t)(c & (0x3f >> k));
        for (int j = 1; j <= k; j++) {
            if ((s[i + (size_t)j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + (size_t)j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp < 0xe000))
            return false;
        i += (size_t)k + 1;
    }
    return true;
}

static void check_vocab_file(int64_t n_vocab) {
    const char *path = tmp_path();
    CHECK(path);
    sl_mkmodel_params p = tiny(path, SL_TYPE_F32);
    p.dim = 8;
    p.n_heads = 2;
    p.n_kv_heads = 2;
    p.n_ff = 8;
    p.n_layers = 1;
    p.n_vocab = n_vocab;
    CHECK_OK(sl_mkmodel_write(&p));
    sl_gguf *g = NULL;
    CHECK_OK(sl_gguf_open(path, &g));
    const sl_gguf_kv *tok = NULL, *sc = NULL, *ty = NULL;
    sl_gguf_vtype et;
    uint64_t n = 0;
    CHECK_OK(sl_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &tok));
    CHECK(et == SL_GGUF_STRING);
    CHECK_EQ_INT(n, n_vocab);
    CHECK_OK(sl_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n, &sc));
    CHECK(et == SL_GGUF_F32);
    CHECK_EQ_INT(n, n_vocab);
    CHECK_OK(sl_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &ty));
    CHECK(et == SL_GGUF_I32);
    CHECK_EQ_INT(n, n_vocab);
    CHECK_EQ_INT(kv_u32(g, "llama.vocab_size"), n_vocab);
    /* llama.cpp token types: 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 6 BYTE */
    CHECK(sl_str_eq(sl_gguf_arr_str(tok, 0), "<unk>") && sl_gguf_arr_int(ty, 0) == 2);
    CHECK(sl_str_eq(sl_gguf_arr_str(tok, 1), "<s>") && sl_gguf_arr_int(ty, 1) == 3);
    CHECK(sl_str_eq(sl_gguf_arr_str(tok, 2), "</s>") && sl_gguf_arr_int(ty, 2) == 3);
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        CHECK_MSG(sl_str_eq(sl_gguf_arr_str(tok, 3 + (uint64_t)b), want) && sl_gguf_arr_int(ty, 3 + (uint64_t)b) == 6,
                  "token %d is not byte token %s", 3 + b, want);
    }
    CHECK(sl_str_eq(sl_gguf_arr_str(tok, 259), "\xe2\x96\x81"));
    char **all = malloc((size_t)n_vocab * sizeof *all);
    CHECK(all);
    for (int64_t i = 0; i < n_vocab; i++) {
        sl_str s = sl_gguf_arr_str(tok, (uint64_t)i);
        all[i] = strndup(s.ptr, s.len);
        if (i >= 259) {
            CHECK_MSG(sl_gguf_arr_int(ty, (uint64_t)i) == 1, "token %lld type %lld", (long long)i,
                      (long long)sl_gguf_arr_int(ty, (uint64_t)i));
            CHECK_MSG(valid_utf8((const uint8_t *)s.ptr, s.len), "token %lld is not valid UTF-8", (long long)i);
            if (i > 259)
                CHECK_MSG(sl_gguf_arr_f32(sc, (uint64_t)i) < sl_gguf_arr_f32(sc, (uint64_t)i - 1),
                          "scores not decreasing at %lld", (long long)i);
        }
    }
    qsort(all, (size_t)n_vocab, sizeof *all, cmp_str);
    int64_t dups = 0;
    for (int64_t i = 1; i < n_vocab; i++) dups += strcmp(all[i - 1], all[i]) == 0;
    for (int64_t i = 0; i < n_vocab; i++) free(all[i]);
    free(all);
    CHECK_EQ_INT(dups, 0);
    if (n_vocab >= 32000) {
        /* multi-character pieces for common words exist */
        bool the = false, once = false;
        for (int64_t i = 259; i < n_vocab; i++) {
            sl_str s = sl_gguf_arr_str(tok, (uint64_t)i);
            the |= sl_str_eq(s, "\xe2\x96\x81the");
            once |= sl_str_eq(s, "\xe2\x96\x81Once");
        }
        CHECK(the && once);
    }
    sl_gguf_close(g);
}

TEST(mkmodel_generated_vocab) {
    check_vocab_file(260);
    if (sl_test_failed()) return;
    check_vocab_file(512);
    if (sl_test_failed()) return;
    check_vocab_file(32000);
}

TEST(mkmodel_validation_names_flags) {
    const char *path = tmp_path();
    CHECK(path);
    struct { const char *flag; void (*edit)(sl_mkmodel_params *); } cases[] = {
        {"--heads", NULL}, {"--kv-heads", NULL}, {"odd", NULL}, {"--dim", NULL},
        {"--ffn", NULL},   {"--vocab", NULL},    {"--type", NULL}, {"--layers", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_mkmodel_params p = tiny(path, SL_TYPE_Q8_0);
        switch (i) {
        case 0: p.n_heads = 3; break;                  /* 64 % 3 */
        case 1: p.n_kv_heads = 3; break;               /* 4 % 3 */
        case 2: p.dim = 96; p.n_heads = 32; break;     /* head dim 3 */
        case 3: p.dim = 48; p.n_heads = 4; break;      /* not a multiple of 32 for Q8_0 */
        case 4: p.n_ff = 100; break;                   /* not a multiple of 32 */
        case 5: p.n_vocab = 100; break;
        case 6: p.type = SL_TYPE_Q4_1; break;
        case 7: p.n_layers = 0; break;
        }
        sl_err_clear();
        CHECK_EQ_INT(sl_mkmodel_write(&p), SL_ERR_INVALID);
        CHECK_MSG(strstr(sl_last_error(), cases[i].flag), "case %zu: message '%s' does not name %s", i,
                  sl_last_error(), cases[i].flag);
    }
    /* F16 has no block constraint: dim 48 is fine */
    sl_mkmodel_params p = tiny(path, SL_TYPE_F16);
    p.dim = 48;
    CHECK_OK(sl_mkmodel_validate(&p));
}

TEST(mkmodel_failure_leaves_no_file_and_spares_devices) {
    char path[96];
    snprintf(path, sizeof path, "%s.absent", tmp_path());
    sl_mkmodel_params p = tiny(path, SL_TYPE_F16);
    p.vocab_from = "/nonexistent/vocab.gguf";
    CHECK(sl_mkmodel_write(&p) == SL_ERR_IO);
    CHECK(strstr(sl_last_error(), "--vocab-from") && strstr(sl_last_error(), "/nonexistent/vocab.gguf"));
    CHECK(access(path, F_OK) != 0);
    if (access("/dev/full", W_OK) == 0) {
        p = tiny("/dev/full", SL_TYPE_F16);
        p.n_vocab = 32000; /* big enough to overflow stdio's buffer */
        CHECK_EQ_INT(sl_mkmodel_write(&p), SL_ERR_IO);
        CHECK(strstr(sl_last_error(), "/dev/full"));
        struct stat sb;
        CHECK(stat("/dev/full", &sb) == 0 && S_ISCHR(sb.st_mode));
    }
}

TEST(mkmodel_cli) {
    const char *path = tmp_path();
    CHECK(path);
    char *argv[] = {(char *)sl_test_bin(), "mkmodel", "-o", (char *)path, "--dim", "64", "--layers", "2", "--heads",
                    "4", "--kv-heads", "2", "--ffn", "96", "--ctx", "256", "--type", "q8_0", "--vocab", "300",
                    "--seed", "42", NULL};
    char *out = NULL, *err = NULL;
    int rc = sl_test_run(argv, &out, &err, 60);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err ? err : "");
    free(out);
    free(err);
    /* the command and the library write the same file */
    const char *lib = tmp_path();
    CHECK(lib);
    sl_mkmodel_params p = tiny(lib, SL_TYPE_Q8_0);
    CHECK_OK(sl_mkmodel_write(&p));
    CHECK(files_equal(path, lib));
    /* an invalid flag combination fails with a message naming the flag */
    char *bad[] = {(char *)sl_test_bin(), "mkmodel", "-o", (char *)path, "--dim", "64", "--layers", "1", "--heads",
                   "3", "--ffn", "96", NULL};
    rc = sl_test_run(bad, &out, &err, 60);
    CHECK_EQ_INT(rc, 1);
    CHECK_MSG(err && strstr(err, "--heads"), "stderr: %s", err ? err : "");
    free(out);
    free(err);
}

TEST(allocation_failures_unwind) {
    /* Every allocation made by the writer and by mkmodel may fail: the call
     * must return NOMEM (ASan checks that nothing leaks), until enough
     * allocations succeed. */
    const char *path = tmp_path();
    CHECK(path);
    int n;
    sl_status st = SL_ERR_NOMEM;
    for (n = 0; n < 2000 && st == SL_ERR_NOMEM; n++) {
        sl_alloc_fail_after(n);
        st = write_sample(path, 0);
        sl_alloc_fail_after(-1);
    }
    CHECK_MSG(st == SL_OK, "writer: status %d after %d injected failures: %s", (int)st, n, sl_last_error());
    check_sample(path, 0);
    if (sl_test_failed()) return;
    st = SL_ERR_NOMEM;
    for (n = 0; n < 5000 && st == SL_ERR_NOMEM; n++) {
        sl_mkmodel_params p = tiny(path, SL_TYPE_Q4_0);
        p.n_vocab = 260;
        sl_alloc_fail_after(n);
        st = sl_mkmodel_write(&p);
        sl_alloc_fail_after(-1);
    }
    CHECK_MSG(st == SL_OK, "mkmodel: status %d after %d injected failures: %s", (int)st, n, sl_last_error());
}

static long model_loaded(const uint8_t *data, size_t len) { return fuzz_model_one(data, len) == 0; }

TEST(model_fuzz_corpus_replay) {
    long loaded = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/model", model_loaded, &loaded);
    printf("   corpus: %d inputs, %ld loaded and run, %ld refused cleanly\n", n, loaded, n - loaded);
    CHECK(n >= 2);
    CHECK(loaded >= 2); /* the two mkmodel seeds */
}

/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader (`make fuzz`).
 *
 * Feeds the input to sl_gguf_open_memory; when it opens, walks every key and
 * tensor through the accessors and checks what gguf.h promises after a
 * successful open: every key, string, array element and tensor data range
 * lies inside the input; lookups by name find the same entry; ranks,
 * dimensions, types, offsets and byte sizes are consistent. A violation
 * aborts, so libFuzzer reports it as a crash; memory errors are ASan's.
 *
 * tests/unit/test_gguf.c includes this file and calls fuzz_gguf_walk() to
 * replay the committed corpus (tests/fuzz/corpus/gguf) as an ordinary test.
 */
#include "model/gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t fuzz_sink; /* keeps the byte reads alive */

static bool fuzz_in(const uint8_t *buf, size_t len, const void *p, uint64_t n) {
    const uint8_t *q = p;
    if (q < buf || q > buf + len) return false;
    return n <= (uint64_t)(buf + len - q);
}

static void fuzz_touch(const void *p, uint64_t n) {
    const uint8_t *q = p;
    uint64_t h = fuzz_sink;
    for (uint64_t i = 0; i < n; i++) h = h * 31 + q[i];
    fuzz_sink = h;
}

/* The name as a C string in out (cap bytes), or NULL when it holds a NUL or is too long. */
static const char *fuzz_cstr(sl_str s, char *out, size_t cap) {
    if (s.len >= cap || memchr(s.ptr, 0, s.len)) return NULL;
    memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
    return out;
}

static uint64_t fuzz_elem_size(sl_gguf_vtype t) {
    switch (t) {
    case SL_GGUF_U8: case SL_GGUF_I8: case SL_GGUF_BOOL: return 1;
    case SL_GGUF_U16: case SL_GGUF_I16: return 2;
    case SL_GGUF_U32: case SL_GGUF_I32: case SL_GGUF_F32: return 4;
    case SL_GGUF_U64: case SL_GGUF_I64: case SL_GGUF_F64: return 8;
    default: return 0;
    }
}

#define FUZZ_REQUIRE(c, what) \
    do { if (!(c)) return what; } while (0)

/* Whether typed getter `which` (0 u32, 1 i32, 2 u64, 3 f32, 4 bool, 5 str, 6 arr) must succeed (1)
 * or fail (0) on a value of type t, or depends on the value (-1). */
static int fuzz_get_expect(sl_gguf_vtype t, int which) {
    bool is_int = t <= SL_GGUF_I32 || t == SL_GGUF_U64 || t == SL_GGUF_I64;
    bool u_small = t == SL_GGUF_U8 || t == SL_GGUF_U16 || t == SL_GGUF_U32;
    switch (which) {
    case 0: return u_small ? 1 : is_int ? -1 : 0;
    case 1: return t == SL_GGUF_U8 || t == SL_GGUF_I8 || t == SL_GGUF_U16 || t == SL_GGUF_I16 || t == SL_GGUF_I32
                       ? 1 : is_int ? -1 : 0;
    case 2: return u_small || t == SL_GGUF_U64 ? 1 : is_int ? -1 : 0;
    case 3: return t == SL_GGUF_F32 || t == SL_GGUF_F64;
    case 4: return t == SL_GGUF_BOOL;
    case 5: return t == SL_GGUF_STRING;
    default: return t == SL_GGUF_ARRAY;
    }
}

/* Call getter `which` on key k (entry kv): its status, or -1 when it succeeds with a wrong result. */
static int fuzz_get(const sl_gguf *g, const char *k, int which, const sl_gguf_kv *kv, const uint8_t *buf,
                          size_t len) {
    uint32_t u;
    int32_t i;
    uint64_t q;
    float f;
    bool b;
    sl_str s;
    sl_gguf_vtype et;
    uint64_t n;
    const sl_gguf_kv *akv;
    sl_status st;
    switch (which) {
    case 0: return sl_gguf_get_u32(g, k, &u);
    case 1: return sl_gguf_get_i32(g, k, &i);
    case 2: return sl_gguf_get_u64(g, k, &q);
    case 3: return sl_gguf_get_f32(g, k, &f);
    case 4:
        st = sl_gguf_get_bool(g, k, &b);
        return st == SL_OK && b != (kv->data[0] != 0) ? -1 : (int)st;
    case 5:
        st = sl_gguf_get_str(g, k, &s);
        return st == SL_OK && !fuzz_in(buf, len, s.ptr, s.len) ? -1 : (int)st;
    default:
        st = sl_gguf_get_arr(g, k, &et, &n, &akv);
        return st == SL_OK && (akv != kv || et != kv->arr_type || n != kv->arr_n) ? -1 : (int)st;
    }
}

static const char *fuzz_walk_kv(const sl_gguf *g, const uint8_t *buf, size_t len, int64_t i) {
    const sl_gguf_kv *kv = sl_gguf_kv_at(g, i);
    FUZZ_REQUIRE(kv, "kv_at(i) is NULL for i < n_kv");
    FUZZ_REQUIRE(kv->key.len > 0 && fuzz_in(buf, len, kv->key.ptr, kv->key.len), "key outside the image");
    FUZZ_REQUIRE((unsigned)kv->type < SL_GGUF_VTYPE_COUNT, "bad value type");
    FUZZ_REQUIRE(kv->offset < len, "value offset outside the image");
    fuzz_touch(kv->key.ptr, kv->key.len);
    char key[512];
    const char *ck = fuzz_cstr(kv->key, key, sizeof key);
    if (ck) {
        FUZZ_REQUIRE(sl_gguf_find(g, ck) == kv, "find(key) is not the entry");
        /* two typed getters per key, rotating with the index (each failure formats a message,
         * so calling all seven on every key would dominate the run time) */
        for (int k = 0; k < 2; k++) {
            int which = (int)((i + 3 * k) % 7);
            int want = fuzz_get_expect(kv->type, which);
            int st = fuzz_get(g, ck, which, kv, buf, len);
            if (st < 0) return "a getter returned a wrong value";
            if (want >= 0) FUZZ_REQUIRE((st == SL_OK) == (want == 1), "a getter's status does not fit the type");
        }
        uint32_t u32v;
        float f;
        bool b;
        switch (i % 3) {
        case 0: (void)sl_gguf_opt_u32(g, ck, 7, &u32v); break;
        case 1: (void)sl_gguf_opt_f32(g, ck, 7.0f, &f); break;
        default: (void)sl_gguf_opt_bool(g, ck, true, &b); break;
        }
    }
    switch (kv->type) {
    case SL_GGUF_STRING: {
        sl_str s = sl_gguf_kv_str(kv);
        FUZZ_REQUIRE(fuzz_in(buf, len, s.ptr, s.len), "string value outside the image");
        fuzz_touch(s.ptr, s.len);
        break;
    }
    case SL_GGUF_F32: case SL_GGUF_F64: fuzz_sink += (uint64_t)(sl_gguf_kv_float(kv) != 0); break;
    case SL_GGUF_ARRAY: {
        sl_gguf_vtype et = kv->arr_type;
        FUZZ_REQUIRE((unsigned)et < SL_GGUF_VTYPE_COUNT && et != SL_GGUF_ARRAY, "bad array element type");
        if (et == SL_GGUF_STRING) {
            for (uint64_t j = 0; j < kv->arr_n; j++) {
                sl_str s = sl_gguf_arr_str(kv, j);
                FUZZ_REQUIRE(fuzz_in(buf, len, s.ptr, s.len), "string element outside the image");
                fuzz_touch(s.ptr, s.len);
            }
            break;
        }
        uint64_t es = fuzz_elem_size(et);
        FUZZ_REQUIRE(kv->arr_n <= len / es && fuzz_in(buf, len, kv->data, kv->arr_n * es),
                     "array outside the image");
        for (uint64_t j = 0; j < kv->arr_n; j++) {
            if (et == SL_GGUF_F32) fuzz_sink += (uint64_t)(sl_gguf_arr_f32(kv, j) != 0);
            else if (et == SL_GGUF_F64) fuzz_sink += (uint64_t)(sl_gguf_arr_f64(kv, j) != 0);
            else if (et == SL_GGUF_BOOL) fuzz_sink += sl_gguf_arr_bool(kv, j);
            else fuzz_sink += (uint64_t)sl_gguf_arr_int(kv, j);
        }
        break;
    }
    default: /* integers and bool */
        FUZZ_REQUIRE(fuzz_in(buf, len, kv->data, fuzz_elem_size(kv->type)), "scalar outside the image");
        fuzz_sink += (uint64_t)sl_gguf_kv_int(kv);
        if (kv->type == SL_GGUF_BOOL) FUZZ_REQUIRE(kv->data[0] <= 1, "bool value not 0 or 1");
        break;
    }
    return NULL;
}

static const char *fuzz_walk_tensor(const sl_gguf *g, const uint8_t *buf, size_t len, int64_t i) {
    const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
    FUZZ_REQUIRE(t, "tensor_at(i) is NULL for i < n_tensors");
    FUZZ_REQUIRE(t->name.len >= 1 && t->name.len <= 63 && fuzz_in(buf, len, t->name.ptr, t->name.len),
                 "tensor name length or place");
    FUZZ_REQUIRE(t->n_dims >= 1 && t->n_dims <= SL_GGUF_MAX_DIMS, "n_dims");
    const sl_type_info *ti = sl_type_get(t->type);
    FUZZ_REQUIRE(ti, "unknown tensor type");
    uint64_t nel = 1;
    for (uint32_t d = 0; d < SL_GGUF_MAX_DIMS; d++) {
        FUZZ_REQUIRE(t->ne[d] >= 0, "negative dimension");
        FUZZ_REQUIRE(d < t->n_dims || t->ne[d] == 1, "unused dimension is not 1");
        FUZZ_REQUIRE(!__builtin_mul_overflow(nel, (uint64_t)t->ne[d], &nel) && nel <= INT64_MAX,
                     "element count overflows");
    }
    FUZZ_REQUIRE(t->ne[0] % ti->blck == 0, "ne[0] not a multiple of the block size");
    uint64_t nb = 0;
    FUZZ_REQUIRE(!__builtin_mul_overflow((uint64_t)(t->ne[0] / ti->blck), (uint64_t)ti->size, &nb), "bytes");
    for (uint32_t d = 1; d < SL_GGUF_MAX_DIMS; d++)
        FUZZ_REQUIRE(!__builtin_mul_overflow(nb, (uint64_t)t->ne[d], &nb), "byte size overflows");
    FUZZ_REQUIRE(nb == t->nbytes, "nbytes is not the size of the shape");
    FUZZ_REQUIRE(t->offset % sl_gguf_alignment(g) == 0, "misaligned tensor offset");
    FUZZ_REQUIRE(sl_gguf_data_offset(g) <= len && t->offset <= len - sl_gguf_data_offset(g) &&
                 t->data == buf + sl_gguf_data_offset(g) + t->offset, "tensor data pointer");
    FUZZ_REQUIRE(fuzz_in(buf, len, t->data, t->nbytes), "tensor data outside the image");
    if (t->nbytes) fuzz_sink += t->data[0] + t->data[t->nbytes - 1];
    char name[64];
    const char *cn = fuzz_cstr(t->name, name, sizeof name);
    if (cn) FUZZ_REQUIRE(sl_gguf_find_tensor(g, cn) == t, "find_tensor(name) is not the tensor");
    return NULL;
}

/* Check every promise of an open handle over buf[0..len); NULL when all hold. */
static const char *fuzz_gguf_walk(const sl_gguf *g, const uint8_t *buf, size_t len) {
    uint32_t a = sl_gguf_alignment(g);
    FUZZ_REQUIRE(sl_gguf_version(g) == 2 || sl_gguf_version(g) == 3, "version");
    FUZZ_REQUIRE(a != 0 && (a & (a - 1)) == 0, "alignment not a power of two");
    FUZZ_REQUIRE(sl_gguf_size(g) == len, "size");
    FUZZ_REQUIRE(sl_gguf_data_offset(g) % a == 0, "data offset not aligned");
    FUZZ_REQUIRE(sl_gguf_n_kv(g) >= 0 && sl_gguf_n_tensors(g) >= 0, "counts");
    FUZZ_REQUIRE(!sl_gguf_kv_at(g, -1) && !sl_gguf_kv_at(g, sl_gguf_n_kv(g)), "kv_at out of range");
    FUZZ_REQUIRE(!sl_gguf_tensor_at(g, -1) && !sl_gguf_tensor_at(g, sl_gguf_n_tensors(g)), "tensor_at range");
    for (int64_t i = 0; i < sl_gguf_n_kv(g); i++) {
        const char *why = fuzz_walk_kv(g, buf, len, i);
        if (why) return why;
    }
    for (int64_t i = 0; i < sl_gguf_n_tensors(g); i++) {
        const char *why = fuzz_walk_tensor(g, buf, len, i);
        if (why) return why;
    }
    (void)sl_gguf_find(g, "");
    (void)sl_gguf_find(g, "general.architecture");
    (void)sl_gguf_find_tensor(g, "token_embd.weight");
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_gguf *g = NULL;
    sl_status st = sl_gguf_open_memory(data, size, &g);
    if (st != SL_OK) {
        /* a failure must leave no handle and say why */
        if (g || sl_last_error()[0] == '\0') abort();
        return 0;
    }
    const char *why = fuzz_gguf_walk(g, data, size);
    if (why) {
        fprintf(stderr, "fuzz_gguf: invariant violated after a successful open: %s\n", why);
        abort();
    }
    sl_gguf_close(g);
    return 0;
}

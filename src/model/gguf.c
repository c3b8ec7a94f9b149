/*
 * gguf.c — validating GGUF reader.
 *
 * Layout (all little-endian): magic "GGUF", u32 version, u64 n_tensors,
 * u64 n_kv, then n_kv key/value pairs, then n_tensors tensor infos
 * (name, u32 n_dims, n_dims × i64 ne, u32 type, u64 offset), then padding to
 * `general.alignment` (default 32) and the tensor data section.
 *
 * Design: a cursor (struct rd) that refuses to read past the end; every
 * count is bounded by the bytes that remain before anything is allocated;
 * sizes are computed with overflow checks. Keys and tensor names are indexed
 * in open-addressing hash tables (also used to reject duplicates in O(n)).
 * The file is mapped read-only; nothing is copied.
 */
#include "gguf.h"

#include "core/alloc.h"
#include "core/status.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64 /* ggml's GGML_MAX_NAME, terminator included */

struct sl_gguf {
    const uint8_t *base;
    uint64_t size;
    bool mapped;
    char *path;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_off;
    int64_t n_kv;
    sl_gguf_kv *kv;
    int64_t n_tensors;
    sl_gguf_tensor *tensors;
    uint64_t kv_cap, t_cap;    /* hash table capacities (power of two) */
    int64_t *kv_index;         /* -1 = empty slot */
    int64_t *t_index;
};

/* ---- cursor -------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *base;
    uint64_t off, size;
    const char *path;
} rd;

static uint64_t remain(const rd *r) { return r->size - r->off; }

static sl_status short_read(const rd *r, const char *field, uint64_t need) {
    return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": needs %" PRIu64 " bytes but only %" PRIu64
                   " remain in the file (truncated or corrupt)",
                   r->path, field, r->off, need, remain(r));
}

static sl_status rd_bytes(rd *r, const char *field, uint64_t n, const uint8_t **out) {
    if (remain(r) < n) return short_read(r, field, n);
    *out = r->base + r->off;
    r->off += n;
    return SL_OK;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static sl_status rd_u32(rd *r, const char *field, uint32_t *v) {
    const uint8_t *p = NULL;
    sl_status st = rd_bytes(r, field, 4, &p);
    if (st) return st;
    *v = le32(p);
    return SL_OK;
}

static sl_status rd_u64(rd *r, const char *field, uint64_t *v) {
    const uint8_t *p = NULL;
    sl_status st = rd_bytes(r, field, 8, &p);
    if (st) return st;
    *v = le64(p);
    return SL_OK;
}

static sl_status rd_str(rd *r, const char *field, sl_str *s) {
    uint64_t at = r->off, len;
    sl_status st = rd_u64(r, field, &len);
    if (st) return st;
    if (len > remain(r))
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": string length %" PRIu64
                       " runs past the end of the file (%" PRIu64 " bytes remain)",
                       r->path, field, at, len, remain(r));
    s->ptr = (const char *)(r->base + r->off);
    s->len = len;
    r->off += len;
    return SL_OK;
}

/* ---- values -------------------------------------------------------------- */

static const uint8_t VSIZE[SL_GGUF_VTYPE_COUNT] = {
    [SL_GGUF_U8] = 1, [SL_GGUF_I8] = 1, [SL_GGUF_U16] = 2, [SL_GGUF_I16] = 2,
    [SL_GGUF_U32] = 4, [SL_GGUF_I32] = 4, [SL_GGUF_F32] = 4, [SL_GGUF_BOOL] = 1,
    [SL_GGUF_U64] = 8, [SL_GGUF_I64] = 8, [SL_GGUF_F64] = 8,
};

const char *sl_vtype_name(sl_gguf_vtype t) {
    static const char *names[SL_GGUF_VTYPE_COUNT] = {"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
                                                     "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < SL_GGUF_VTYPE_COUNT ? names[t] : "?";
}

static bool is_int_type(sl_gguf_vtype t) {
    return t == SL_GGUF_U8 || t == SL_GGUF_I8 || t == SL_GGUF_U16 || t == SL_GGUF_I16 || t == SL_GGUF_U32 ||
           t == SL_GGUF_I32 || t == SL_GGUF_U64 || t == SL_GGUF_I64;
}

/* Signed value of an integer element; u64 above INT64_MAX is reported via *big. */
static int64_t int_at(sl_gguf_vtype t, const uint8_t *p, bool *big) {
    *big = false;
    switch (t) {
    case SL_GGUF_U8: return p[0];
    case SL_GGUF_I8: return (int8_t)p[0];
    case SL_GGUF_U16: return (uint16_t)(p[0] | p[1] << 8);
    case SL_GGUF_I16: return (int16_t)(uint16_t)(p[0] | p[1] << 8);
    case SL_GGUF_U32: return le32(p);
    case SL_GGUF_I32: return (int32_t)le32(p);
    case SL_GGUF_U64: {
        uint64_t v = le64(p);
        if (v > INT64_MAX) *big = true;
        return (int64_t)v;
    }
    case SL_GGUF_I64: return (int64_t)le64(p);
    default: return 0;
    }
}

/* Read one key's value (type already read). */
static sl_status rd_value(rd *r, sl_gguf_kv *kv, const char *field) {
    sl_status st;
    kv->offset = r->off;
    if (kv->type == SL_GGUF_STRING) {
        sl_str s;
        st = rd_str(r, field, &s);
        if (st) return st;
        kv->data = (const uint8_t *)s.ptr - 8;
        return SL_OK;
    }
    if (kv->type == SL_GGUF_ARRAY) {
        uint32_t et;
        uint64_t at = r->off;
        if ((st = rd_u32(r, field, &et))) return st;
        if (et >= SL_GGUF_VTYPE_COUNT || et == SL_GGUF_ARRAY)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": array element type %" PRIu32
                           " is not valid (%s)",
                           r->path, field, at, et, et == SL_GGUF_ARRAY ? "nested arrays are not allowed" : "unknown type");
        kv->arr_type = (sl_gguf_vtype)et;
        at = r->off;
        if ((st = rd_u64(r, field, &kv->arr_n))) return st;
        if (et == SL_GGUF_STRING) {
            /* every string takes at least its 8-byte length */
            if (kv->arr_n > remain(r) / 8)
                return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": array count %" PRIu64
                               " of strings cannot fit in the %" PRIu64 " bytes that remain",
                               r->path, field, at, kv->arr_n, remain(r));
            kv->data = r->base + r->off;
            kv->str_offsets = sl_alloc_array(kv->arr_n ? kv->arr_n : 1, sizeof(uint64_t));
            if (!kv->str_offsets) return SL_FAIL(SL_ERR_NOMEM, "%s: %s: out of memory for %" PRIu64 " strings",
                                                 r->path, field, kv->arr_n);
            uint64_t start = r->off;
            for (uint64_t i = 0; i < kv->arr_n; i++) {
                sl_str s;
                kv->str_offsets[i] = r->off - start;
                if ((st = rd_str(r, field, &s))) return sl_err_prefix(st, "element %" PRIu64, i);
            }
            return SL_OK;
        }
        uint64_t es = VSIZE[et];
        if (kv->arr_n > remain(r) / es)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": array count %" PRIu64 " of %s (%" PRIu64
                           " bytes) runs past the end of the file (%" PRIu64 " bytes remain)",
                           r->path, field, at, kv->arr_n, sl_vtype_name(kv->arr_type), es, remain(r));
        kv->data = r->base + r->off;
        r->off += kv->arr_n * es;
        if (et == SL_GGUF_BOOL) {
            for (uint64_t i = 0; i < kv->arr_n; i++)
                if (kv->data[i] > 1)
                    return SL_FAIL(SL_ERR_FORMAT, "%s: %s: bool array element %" PRIu64 " has value %u",
                                   r->path, field, i, kv->data[i]);
        }
        return SL_OK;
    }
    const uint8_t *p = NULL;
    if ((st = rd_bytes(r, field, VSIZE[kv->type], &p))) return st;
    if (kv->type == SL_GGUF_BOOL && p[0] > 1)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": bool value %u is not 0 or 1", r->path, field,
                       kv->offset, p[0]);
    kv->data = p;
    return SL_OK;
}

/* ---- hash index ---------------------------------------------------------- */

static uint64_t hash_bytes(const char *p, uint64_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

static uint64_t index_cap(int64_t n) {
    uint64_t cap = 8;
    while (cap < (uint64_t)n * 2) cap <<= 1;
    return cap;
}

/* Insert entry i with name s; returns the index of an existing equal name or -1. */
typedef sl_str (*name_fn)(const sl_gguf *g, int64_t i);
static sl_str kv_name(const sl_gguf *g, int64_t i) { return g->kv[i].key; }
static sl_str t_name(const sl_gguf *g, int64_t i) { return g->tensors[i].name; }

static int64_t index_insert(const sl_gguf *g, int64_t *tab, uint64_t cap, name_fn nf, int64_t i) {
    sl_str s = nf(g, i);
    uint64_t h = hash_bytes(s.ptr, s.len) & (cap - 1);
    while (tab[h] >= 0) {
        sl_str o = nf(g, tab[h]);
        if (o.len == s.len && memcmp(o.ptr, s.ptr, s.len) == 0) return tab[h];
        h = (h + 1) & (cap - 1);
    }
    tab[h] = i;
    return -1;
}

static int64_t index_find(const sl_gguf *g, const int64_t *tab, uint64_t cap, name_fn nf, const char *name) {
    if (!tab) return -1;
    uint64_t n = strlen(name);
    uint64_t h = hash_bytes(name, n) & (cap - 1);
    while (tab[h] >= 0) {
        sl_str o = nf(g, tab[h]);
        if (o.len == n && memcmp(o.ptr, name, n) == 0) return tab[h];
        h = (h + 1) & (cap - 1);
    }
    return -1;
}

static int64_t *index_new(uint64_t cap) {
    int64_t *t = sl_alloc_array(cap, sizeof(int64_t));
    if (t) memset(t, 0xff, cap * sizeof(int64_t));
    return t;
}

/* ---- parse --------------------------------------------------------------- */

static sl_status parse(sl_gguf *g) {
    sl_status st;
    char field[160];
    rd r = {g->base, 0, g->size, g->path};
    const uint8_t *magic = NULL;
    if ((st = rd_bytes(&r, "magic", 4, &magic))) return st;
    if (memcmp(magic, "GGUF", 4) != 0)
        return SL_FAIL(SL_ERR_FORMAT, "%s: magic at offset 0: expected \"GGUF\", found bytes %02x %02x %02x %02x "
                       "(not a GGUF file)", g->path, magic[0], magic[1], magic[2], magic[3]);
    if ((st = rd_u32(&r, "version", &g->version))) return st;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "%s: version at offset 4: the file is big-endian (version field 0x%08"
                       PRIx32 "); only little-endian GGUF is supported", g->path, g->version);
    if (g->version != 2 && g->version != 3)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "%s: version at offset 4: GGUF version %" PRIu32
                       " is not supported (expected 2 or 3)", g->path, g->version);
    uint64_t n_tensors, n_kv;
    uint64_t at_nt = r.off;
    if ((st = rd_u64(&r, "tensor_count", &n_tensors))) return st;
    uint64_t at_nkv = r.off;
    if ((st = rd_u64(&r, "kv_count", &n_kv))) return st;
    /* each kv needs >= 13 bytes (key length 8, type 4, value 1) */
    if (n_kv > remain(&r) / 13)
        return SL_FAIL(SL_ERR_FORMAT, "%s: kv_count at offset %" PRIu64 ": %" PRIu64
                       " key/value pairs cannot fit in the %" PRIu64 " bytes that remain",
                       g->path, at_nkv, n_kv, remain(&r));
    /* each tensor info needs >= 32 bytes (name 8, n_dims 4, one dim 8, type 4, offset 8) */
    if (n_tensors > remain(&r) / 32)
        return SL_FAIL(SL_ERR_FORMAT, "%s: tensor_count at offset %" PRIu64 ": %" PRIu64
                       " tensors cannot fit in the %" PRIu64 " bytes that remain",
                       g->path, at_nt, n_tensors, remain(&r));

    g->kv = sl_calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    g->kv_cap = index_cap((int64_t)n_kv);
    g->kv_index = index_new(g->kv_cap);
    if (!g->kv || !g->kv_index) return SL_FAIL(SL_ERR_NOMEM, "%s: out of memory for %" PRIu64 " keys", g->path, n_kv);

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        sl_gguf_kv *kv = &g->kv[i];
        uint64_t at = r.off;
        snprintf(field, sizeof field, "kv[%" PRIu64 "].key", i);
        if ((st = rd_str(&r, field, &kv->key))) return st;
        if (kv->key.len == 0)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": empty key", g->path, field, at);
        g->n_kv = (int64_t)i + 1; /* so cleanup frees str_offsets */
        snprintf(field, sizeof field, "kv[%" PRIu64 "] '%.*s'", i, (int)(kv->key.len > 80 ? 80 : kv->key.len),
                 kv->key.ptr);
        uint32_t type;
        at = r.off;
        if ((st = rd_u32(&r, field, &type))) return st;
        if (type >= SL_GGUF_VTYPE_COUNT)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s value type at offset %" PRIu64 ": unknown type %" PRIu32, g->path,
                           field, at, type);
        kv->type = (sl_gguf_vtype)type;
        if ((st = rd_value(&r, kv, field))) return st;
        int64_t dup = index_insert(g, g->kv_index, g->kv_cap, kv_name, (int64_t)i);
        if (dup >= 0)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": duplicate key (also kv[%" PRId64 "])", g->path,
                           field, at, dup);
        if (sl_str_eq(kv->key, "general.alignment")) {
            if (kv->type != SL_GGUF_U32)
                return SL_FAIL(SL_ERR_FORMAT, "%s: general.alignment at offset %" PRIu64 ": type %s, expected u32",
                               g->path, kv->offset, sl_vtype_name(kv->type));
            uint32_t a = le32(kv->data);
            if (a == 0 || (a & (a - 1)) != 0)
                return SL_FAIL(SL_ERR_FORMAT, "%s: general.alignment at offset %" PRIu64 ": %" PRIu32
                               " is not a power of two", g->path, kv->offset, a);
            g->alignment = a;
        }
    }

    g->tensors = sl_calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    g->t_cap = index_cap((int64_t)n_tensors);
    g->t_index = index_new(g->t_cap);
    if (!g->tensors || !g->t_index)
        return SL_FAIL(SL_ERR_NOMEM, "%s: out of memory for %" PRIu64 " tensors", g->path, n_tensors);
    g->n_tensors = (int64_t)n_tensors;

    for (uint64_t i = 0; i < n_tensors; i++) {
        sl_gguf_tensor *t = &g->tensors[i];
        uint64_t at = r.off;
        snprintf(field, sizeof field, "tensor[%" PRIu64 "].name", i);
        if ((st = rd_str(&r, field, &t->name))) return st;
        if (t->name.len == 0 || t->name.len >= GGUF_MAX_NAME)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": name length %" PRIu64
                           " is not in 1..%d", g->path, field, at, t->name.len, GGUF_MAX_NAME - 1);
        char tn[GGUF_MAX_NAME + 16];
        snprintf(tn, sizeof tn, "%.*s", (int)t->name.len, t->name.ptr);
        at = r.off;
        snprintf(field, sizeof field, "tensor '%s' n_dims", tn);
        if ((st = rd_u32(&r, field, &t->n_dims))) return st;
        if (t->n_dims == 0 || t->n_dims > SL_GGUF_MAX_DIMS)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": %" PRIu32 " dimensions (expected 1..%d)",
                           g->path, field, at, t->n_dims, SL_GGUF_MAX_DIMS);
        int64_t nel = 1;
        for (uint32_t d = 0; d < SL_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t v;
            at = r.off;
            snprintf(field, sizeof field, "tensor '%s' ne[%" PRIu32 "]", tn, d);
            if ((st = rd_u64(&r, field, &v))) return st;
            if (v > INT64_MAX)
                return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": dimension %" PRIu64 " is negative",
                               g->path, field, at, v);
            t->ne[d] = (int64_t)v;
            if (v != 0 && nel > INT64_MAX / (int64_t)v)
                return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": dimension %" PRIu64
                               " makes the element count overflow 64 bits", g->path, field, at, v);
            nel *= (int64_t)v;
        }
        uint32_t type;
        at = r.off;
        snprintf(field, sizeof field, "tensor '%s' type", tn);
        if ((st = rd_u32(&r, field, &type))) return st;
        const sl_type_info *ti = sl_type_get(type);
        if (!ti)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": unknown tensor type %" PRIu32, g->path,
                           field, at, type);
        t->type = (sl_type)type;
        if (t->ne[0] % ti->blck != 0)
            return SL_FAIL(SL_ERR_FORMAT, "%s: tensor '%s': ne[0] = %" PRId64 " is not a multiple of the %s block size %"
                           PRIu32, g->path, tn, t->ne[0], ti->name, ti->blck);
        /* bytes = (ne0/blck)*size * ne1*ne2*ne3, overflow-checked */
        uint64_t nb = (uint64_t)(t->ne[0] / ti->blck);
        if (nb != 0 && ti->size > UINT64_MAX / nb) goto overflow;
        nb *= ti->size;
        for (uint32_t d = 1; d < SL_GGUF_MAX_DIMS; d++) {
            uint64_t v = (uint64_t)t->ne[d];
            if (v != 0 && nb > UINT64_MAX / v) goto overflow;
            nb *= v;
        }
        t->nbytes = nb;
        at = r.off;
        snprintf(field, sizeof field, "tensor '%s' offset", tn);
        if ((st = rd_u64(&r, field, &t->offset))) return st;
        if (t->offset % g->alignment != 0)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": data offset %" PRIu64
                           " is not a multiple of the alignment %" PRIu32, g->path, field, at, t->offset, g->alignment);
        int64_t dup = index_insert(g, g->t_index, g->t_cap, t_name, (int64_t)i);
        if (dup >= 0)
            return SL_FAIL(SL_ERR_FORMAT, "%s: tensor[%" PRIu64 "] '%s': duplicate tensor name (also tensor[%" PRId64 "])",
                           g->path, i, tn, dup);
        continue;
    overflow:
        return SL_FAIL(SL_ERR_FORMAT, "%s: tensor '%s': byte size of %" PRId64 "x%" PRId64 "x%" PRId64 "x%" PRId64
                       " %s overflows 64 bits", g->path, tn, t->ne[0], t->ne[1], t->ne[2], t->ne[3], ti->name);
    }

    uint64_t pad = (g->alignment - r.off % g->alignment) % g->alignment;
    g->data_off = r.off + pad; /* cannot overflow: r.off <= size < 2^63 */
    for (int64_t i = 0; i < g->n_tensors; i++) {
        sl_gguf_tensor *t = &g->tensors[i];
        if (g->data_off > g->size || t->offset > g->size - g->data_off ||
            t->nbytes > g->size - g->data_off - t->offset)
            return SL_FAIL(SL_ERR_FORMAT, "%s: tensor '%.*s' offset: data [%" PRIu64 ", +%" PRIu64
                           ") from the data section at %" PRIu64 " runs past the end of the file (size %" PRIu64 ")",
                           g->path, (int)t->name.len, t->name.ptr, t->offset, t->nbytes, g->data_off, g->size);
        t->data = g->base + g->data_off + t->offset;
    }
    return SL_OK;
}

static sl_status open_common(sl_gguf *g, sl_gguf **out) {
    sl_status st = parse(g);
    if (st) {
        sl_gguf_close(g);
        return st;
    }
    *out = g;
    return SL_OK;
}

sl_status sl_gguf_open_memory(const void *buf, size_t len, sl_gguf **out) {
    *out = NULL;
    sl_gguf *g = sl_calloc(1, sizeof *g);
    if (!g) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    g->path = sl_strdup("<memory>");
    if (!g->path) {
        sl_free(g);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    g->base = buf;
    g->size = len;
    return open_common(g, out);
}

sl_status sl_gguf_open(const char *path, sl_gguf **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return SL_FAIL(SL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return SL_FAIL(SL_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return SL_FAIL(SL_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 4) {
        close(fd);
        return SL_FAIL(SL_ERR_FORMAT, "%s: file is %lld bytes, too small to be GGUF", path, (long long)sb.st_size);
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return SL_FAIL(SL_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    sl_gguf *g = sl_calloc(1, sizeof *g);
    char *pc = sl_strdup(path);
    if (!g || !pc) {
        munmap(p, (size_t)sb.st_size);
        sl_free(g);
        sl_free(pc);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    g->path = pc;
    g->base = p;
    g->size = (uint64_t)sb.st_size;
    g->mapped = true;
    return open_common(g, out);
}

void sl_gguf_close(sl_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) sl_free(g->kv[i].str_offsets);
    sl_free(g->kv);
    sl_free(g->tensors);
    sl_free(g->kv_index);
    sl_free(g->t_index);
    if (g->mapped) munmap((void *)g->base, g->size);
    sl_free(g->path);
    sl_free(g);
}

/* ---- accessors ----------------------------------------------------------- */

bool sl_str_eq(sl_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

uint32_t sl_gguf_version(const sl_gguf *g) { return g->version; }
uint32_t sl_gguf_alignment(const sl_gguf *g) { return g->alignment; }
uint64_t sl_gguf_size(const sl_gguf *g) { return g->size; }
uint64_t sl_gguf_data_offset(const sl_gguf *g) { return g->data_off; }
const char *sl_gguf_path(const sl_gguf *g) { return g->path; }
int64_t sl_gguf_n_kv(const sl_gguf *g) { return g->n_kv; }
const sl_gguf_kv *sl_gguf_kv_at(const sl_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}
int64_t sl_gguf_n_tensors(const sl_gguf *g) { return g->n_tensors; }
const sl_gguf_tensor *sl_gguf_tensor_at(const sl_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const sl_gguf_kv *sl_gguf_find(const sl_gguf *g, const char *key) {
    int64_t i = index_find(g, g->kv_index, g->kv_cap, kv_name, key);
    return i >= 0 ? &g->kv[i] : NULL;
}

const sl_gguf_tensor *sl_gguf_find_tensor(const sl_gguf *g, const char *name) {
    int64_t i = index_find(g, g->t_index, g->t_cap, t_name, name);
    return i >= 0 ? &g->tensors[i] : NULL;
}

static sl_status need(const sl_gguf *g, const char *key, const sl_gguf_kv **kv) {
    *kv = sl_gguf_find(g, key);
    if (!*kv) return SL_FAIL(SL_ERR_FORMAT, "%s: missing key '%s'", g->path, key);
    return SL_OK;
}

static sl_status wrong_type(const sl_gguf *g, const sl_gguf_kv *kv, const char *key, const char *want) {
    return SL_FAIL(SL_ERR_FORMAT, "%s: key '%s' at offset %" PRIu64 " has type %s, expected %s", g->path, key,
                   kv->offset, sl_vtype_name(kv->type), want);
}

static sl_status get_int(const sl_gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const sl_gguf_kv *kv;
    sl_status st = need(g, key, &kv);
    if (st) return st;
    if (!is_int_type(kv->type)) return wrong_type(g, kv, key, "an integer");
    bool big;
    int64_t v = int_at(kv->type, kv->data, &big);
    if (big || v < lo || v > hi)
        return SL_FAIL(SL_ERR_FORMAT, "%s: key '%s' at offset %" PRIu64 ": value %" PRId64 " out of range [%" PRId64
                       ", %" PRId64 "]", g->path, key, kv->offset, v, lo, hi);
    *out = v;
    return SL_OK;
}

sl_status sl_gguf_get_u32(const sl_gguf *g, const char *key, uint32_t *out) {
    int64_t v;
    sl_status st = get_int(g, key, 0, UINT32_MAX, &v);
    if (!st) *out = (uint32_t)v;
    return st;
}

sl_status sl_gguf_get_i32(const sl_gguf *g, const char *key, int32_t *out) {
    int64_t v;
    sl_status st = get_int(g, key, INT32_MIN, INT32_MAX, &v);
    if (!st) *out = (int32_t)v;
    return st;
}

sl_status sl_gguf_get_u64(const sl_gguf *g, const char *key, uint64_t *out) {
    const sl_gguf_kv *kv;
    sl_status st = need(g, key, &kv);
    if (st) return st;
    if (kv->type == SL_GGUF_U64) {
        *out = le64(kv->data);
        return SL_OK;
    }
    int64_t v;
    if ((st = get_int(g, key, 0, INT64_MAX, &v))) return st;
    *out = (uint64_t)v;
    return SL_OK;
}

sl_status sl_gguf_get_f32(const sl_gguf *g, const char *key, float *out) {
    const sl_gguf_kv *kv;
    sl_status st = need(g, key, &kv);
    if (st) return st;
    if (kv->type == SL_GGUF_F32) {
        uint32_t u = le32(kv->data);
        memcpy(out, &u, 4);
    } else if (kv->type == SL_GGUF_F64) {
        uint64_t u = le64(kv->data);
        double d;
        memcpy(&d, &u, 8);
        *out = (float)d;
    } else {
        return wrong_type(g, kv, key, "f32");
    }
    return SL_OK;
}

sl_status sl_gguf_get_bool(const sl_gguf *g, const char *key, bool *out) {
    const sl_gguf_kv *kv;
    sl_status st = need(g, key, &kv);
    if (st) return st;
    if (kv->type != SL_GGUF_BOOL) return wrong_type(g, kv, key, "bool");
    *out = kv->data[0] != 0;
    return SL_OK;
}

sl_status sl_gguf_get_str(const sl_gguf *g, const char *key, sl_str *out) {
    const sl_gguf_kv *kv;
    sl_status st = need(g, key, &kv);
    if (st) return st;
    if (kv->type != SL_GGUF_STRING) return wrong_type(g, kv, key, "string");
    out->len = le64(kv->data);
    out->ptr = (const char *)kv->data + 8;
    return SL_OK;
}

sl_status sl_gguf_get_arr(const sl_gguf *g, const char *key, sl_gguf_vtype *elem_type, uint64_t *n,
                          const sl_gguf_kv **kv_out) {
    const sl_gguf_kv *kv;
    sl_status st = need(g, key, &kv);
    if (st) return st;
    if (kv->type != SL_GGUF_ARRAY) return wrong_type(g, kv, key, "array");
    if (elem_type) *elem_type = kv->arr_type;
    if (n) *n = kv->arr_n;
    if (kv_out) *kv_out = kv;
    return SL_OK;
}

sl_str sl_gguf_arr_str(const sl_gguf_kv *kv, uint64_t i) {
    SL_ASSERT(kv->type == SL_GGUF_ARRAY && kv->arr_type == SL_GGUF_STRING && i < kv->arr_n);
    const uint8_t *p = kv->data + kv->str_offsets[i];
    sl_str s = {(const char *)p + 8, le64(p)};
    return s;
}

float sl_gguf_arr_f32(const sl_gguf_kv *kv, uint64_t i) {
    SL_ASSERT(kv->type == SL_GGUF_ARRAY && kv->arr_type == SL_GGUF_F32 && i < kv->arr_n);
    uint32_t u = le32(kv->data + 4 * i);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int64_t sl_gguf_arr_int(const sl_gguf_kv *kv, uint64_t i) {
    SL_ASSERT(kv->type == SL_GGUF_ARRAY && is_int_type(kv->arr_type) && i < kv->arr_n);
    bool big;
    return int_at(kv->arr_type, kv->data + VSIZE[kv->arr_type] * i, &big);
}

sl_status sl_gguf_opt_u32(const sl_gguf *g, const char *key, uint32_t def, uint32_t *out) {
    if (!sl_gguf_find(g, key)) {
        *out = def;
        return SL_OK;
    }
    return sl_gguf_get_u32(g, key, out);
}

sl_status sl_gguf_opt_f32(const sl_gguf *g, const char *key, float def, float *out) {
    if (!sl_gguf_find(g, key)) {
        *out = def;
        return SL_OK;
    }
    return sl_gguf_get_f32(g, key, out);
}

sl_status sl_gguf_opt_bool(const sl_gguf *g, const char *key, bool def, bool *out) {
    if (!sl_gguf_find(g, key)) {
        *out = def;
        return SL_OK;
    }
    return sl_gguf_get_bool(g, key, out);
}

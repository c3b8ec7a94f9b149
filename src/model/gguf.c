/*
 * gguf.c — validating GGUF reader.
 *
 * Layout (all little-endian): magic "GGUF", u32 version, u64 n_tensors,
 * u64 n_kv, then n_kv key/value pairs, then n_tensors tensor infos
 * (name, u32 n_dims, n_dims × i64 ne, u32 type, u64 offset), then padding to
 * `general.alignment` (default 32) and the tensor data section.
 *
 * Design: a cursor (struct rd) that refuses to read past the end. Every
 * count, length, dimension and offset read from the file is hostile until
 * checked against the bytes that remain, with overflow-safe arithmetic (the
 * shapes of the GGUF CVEs against llama.cpp and Ollama: counts near 2^64,
 * strings longer than the file, offsets that wrap). Memory grows with what
 * was actually parsed — the key and tensor arrays double as entries are read,
 * a string array's offset table is allocated only after its strings were
 * walked — so a count that lies costs nothing. Keys and tensor names are
 * indexed in open-addressing hash tables, which also reject duplicates in
 * O(n). The file is mapped read-only; nothing is copied.
 *
 * Invariants after a successful open: every key, string, array and tensor
 * data range lies inside the image; keys and tensor names are non-empty and
 * unique; n_dims is 1..4, every ne >= 0 and unused ne are 1; ne[0] is a
 * multiple of the type's block size; nbytes fits 64 bits; tensor offsets are
 * multiples of the alignment (a power of two). Messages quote names with
 * non-printable bytes escaped as \xNN.
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
#define GGUF_MAX_NAME 64   /* ggml's GGML_MAX_NAME, terminator included */
#define ESC_SHOW 96        /* name bytes quoted in a message */
#define ESC_CAP (4 * ESC_SHOW + 8)

/* Open-addressing index of names: slot[] holds entry numbers, -1 = empty. */
typedef struct name_index {
    int64_t *slot;
    uint64_t cap; /* power of two, at least twice the entries; 0 before the first insert */
} name_index;

struct sl_gguf {
    const uint8_t *base;
    uint64_t size;
    bool mapped;
    char *path;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_off;
    int64_t n_kv;
    sl_gguf_kv *kv;            /* kv_alloc entries, n_kv used, the rest zeroed */
    uint64_t kv_alloc;
    int64_t n_tensors;
    sl_gguf_tensor *tensors;   /* t_alloc entries, n_tensors used */
    uint64_t t_alloc;
    name_index kv_idx, t_idx;
};

/* Quote `len` bytes at `s` for a message: printable ASCII as is, other bytes
 * (and quote, backslash) as \xNN, at most ESC_SHOW bytes, then "...". */
static const char *esc(char buf[ESC_CAP], const char *s, uint64_t len) {
    size_t k = 0;
    uint64_t n = len < ESC_SHOW ? len : ESC_SHOW;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') buf[k++] = (char)c;
        else k += (size_t)snprintf(buf + k, ESC_CAP - k, "\\x%02x", c);
    }
    if (n < len) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

/* What is being read, for messages. Formatted only when something fails, so
 * the happy path does no string work per field. */
typedef struct fld {
    const char *plain; /* a header field ("magic", "kv_count"), or NULL */
    bool tensor;       /* tensor info, else key/value pair */
    uint64_t i;        /* entry index */
    sl_str name;       /* key or tensor name; len 0 while it is being read */
    const char *part;  /* tensor field ("n_dims", "ne", "type", "offset") */
    int64_t sub;       /* dimension (ne) or array element, -1 when none */
} fld;

#define FLD_CAP (ESC_CAP + 96)

/* "kv[3].key", "kv[3] 'general.name'", "kv[3] 'tokens' element 7", "tensor[2].name",
 * "tensor 'a.weight' ne[1]", "tensor 'a.weight' offset" */
static const char *fld_fmt(const fld *f, char *buf) {
    char nm[ESC_CAP];
    int k;
    if (f->plain) return f->plain;
    if (f->name.len == 0) {
        snprintf(buf, FLD_CAP, "%s[%" PRIu64 "].%s", f->tensor ? "tensor" : "kv", f->i, f->tensor ? "name" : "key");
        return buf;
    }
    esc(nm, f->name.ptr, f->name.len);
    if (f->tensor) k = snprintf(buf, FLD_CAP, "tensor '%s' %s", nm, f->part ? f->part : "");
    else k = snprintf(buf, FLD_CAP, "kv[%" PRIu64 "] '%s'", f->i, nm);
    if (f->sub >= 0 && k > 0 && k < FLD_CAP)
        snprintf(buf + k, FLD_CAP - (size_t)k, f->tensor ? "[%" PRId64 "]" : " element %" PRId64, f->sub);
    return buf;
}

/* The field's text, in a buffer that lives to the end of the enclosing block. */
#define FLD(f) fld_fmt((f), (char[FLD_CAP]){0})

/* ---- cursor -------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *base;
    uint64_t off, size;
    const char *path;
} rd;

static uint64_t remain(const rd *r) { return r->size - r->off; }

static sl_status short_read(const rd *r, const fld *f, uint64_t need) {
    return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": needs %" PRIu64 " bytes but only %" PRIu64
                   " remain in the file (truncated or corrupt)",
                   r->path, FLD(f), r->off, need, remain(r));
}

static sl_status rd_bytes(rd *r, const fld *f, uint64_t n, const uint8_t **out) {
    if (remain(r) < n) return short_read(r, f, n);
    *out = r->base + r->off;
    r->off += n;
    return SL_OK;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static sl_status rd_u32(rd *r, const fld *f, uint32_t *v) {
    const uint8_t *p = NULL;
    sl_status st = rd_bytes(r, f, 4, &p);
    if (st) return st;
    *v = le32(p);
    return SL_OK;
}

static sl_status rd_u64(rd *r, const fld *f, uint64_t *v) {
    const uint8_t *p = NULL;
    sl_status st = rd_bytes(r, f, 8, &p);
    if (st) return st;
    *v = le64(p);
    return SL_OK;
}

static sl_status rd_str(rd *r, const fld *f, sl_str *s) {
    uint64_t at = r->off, len;
    sl_status st = rd_u64(r, f, &len);
    if (st) return st;
    if (len > remain(r))
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": string length %" PRIu64
                       " runs past the end of the file (%" PRIu64 " bytes remain)",
                       r->path, FLD(f), at, len, remain(r));
    s->ptr = (const char *)(r->base + r->off);
    s->len = len;
    r->off += len;
    return SL_OK;
}

/* Skip one string without recording a message; false when it does not fit. */
static bool skip_str(rd *r) {
    if (remain(r) < 8) return false;
    uint64_t len = le64(r->base + r->off);
    if (len > remain(r) - 8) return false;
    r->off += 8 + len;
    return true;
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

/* An array of strings: walk the strings (checking each length), then record
 * each element's offset from the first. */
static sl_status rd_str_array(rd *r, sl_gguf_kv *kv, const fld *f, uint64_t at_count) {
    /* every string takes at least its 8-byte length */
    if (kv->arr_n > remain(r) / 8)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": array count %" PRIu64
                       " of strings cannot fit in the %" PRIu64 " bytes that remain",
                       r->path, FLD(f), at_count, kv->arr_n, remain(r));
    uint64_t start = r->off;
    kv->data = r->base + start;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        if (skip_str(r)) continue;
        fld ef = *f;
        ef.sub = (int64_t)i;
        sl_str s;
        sl_status st = rd_str(r, &ef, &s); /* fails, naming the element */
        SL_ASSERT(st != SL_OK);
        return st;
    }
    /* each string took at least 8 bytes of the file: the table is no larger than they are */
    kv->str_offsets = sl_alloc_array(kv->arr_n ? kv->arr_n : 1, sizeof(uint64_t));
    if (!kv->str_offsets)
        return SL_FAIL(SL_ERR_NOMEM, "%s: %s: out of memory for %" PRIu64 " string offsets", r->path, FLD(f),
                       kv->arr_n);
    uint64_t p = start;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        kv->str_offsets[i] = p - start;
        p += 8 + le64(r->base + p);
    }
    return SL_OK;
}

/* Read one key's value (type already read and known). */
static sl_status rd_value(rd *r, sl_gguf_kv *kv, const fld *f) {
    sl_status st;
    kv->offset = r->off;
    if (kv->type == SL_GGUF_STRING) {
        sl_str s;
        if ((st = rd_str(r, f, &s))) return st;
        kv->data = (const uint8_t *)s.ptr - 8;
        return SL_OK;
    }
    if (kv->type == SL_GGUF_ARRAY) {
        uint32_t et;
        uint64_t at = r->off;
        if ((st = rd_u32(r, f, &et))) return st;
        if (et >= SL_GGUF_VTYPE_COUNT || et == SL_GGUF_ARRAY)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": array element type %" PRIu32
                           " is not valid (%s)", r->path, FLD(f), at, et,
                           et == SL_GGUF_ARRAY ? "nested arrays are not allowed" : "unknown type");
        kv->arr_type = (sl_gguf_vtype)et;
        at = r->off;
        if ((st = rd_u64(r, f, &kv->arr_n))) return st;
        if (et == SL_GGUF_STRING) return rd_str_array(r, kv, f, at);
        uint64_t es = VSIZE[et];
        if (kv->arr_n > remain(r) / es) /* division: arr_n * es may wrap */
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": array count %" PRIu64 " of %s (%" PRIu64
                           " bytes each) runs past the end of the file (%" PRIu64 " bytes remain)",
                           r->path, FLD(f), at, kv->arr_n, sl_vtype_name(kv->arr_type), es, remain(r));
        kv->data = r->base + r->off;
        r->off += kv->arr_n * es;
        if (et == SL_GGUF_BOOL) {
            for (uint64_t i = 0; i < kv->arr_n; i++)
                if (kv->data[i] > 1)
                    return SL_FAIL(SL_ERR_FORMAT, "%s: %s element %" PRIu64 " at offset %" PRIu64
                                   ": bool value %u is not 0 or 1", r->path, FLD(f), i,
                                   (uint64_t)(kv->data + i - r->base), kv->data[i]);
        }
        return SL_OK;
    }
    const uint8_t *p = NULL;
    if ((st = rd_bytes(r, f, VSIZE[kv->type], &p))) return st;
    if (kv->type == SL_GGUF_BOOL && p[0] > 1)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": bool value %u is not 0 or 1", r->path, FLD(f),
                       kv->offset, p[0]);
    kv->data = p;
    return SL_OK;
}

/* ---- growth and hash index ----------------------------------------------- */

/* Make room for `need` entries of `elem` bytes in *arr (doubling; new entries zeroed). */
static sl_status reserve(const sl_gguf *g, void **arr, uint64_t *alloc, uint64_t need, size_t elem,
                         const char *what) {
    if (need <= *alloc) return SL_OK;
    uint64_t n = *alloc ? *alloc : 16;
    while (n < need) n *= 2; /* need <= file size, so this cannot wrap */
    void *p = n <= SIZE_MAX / elem ? sl_realloc(*arr, (size_t)(n * elem)) : NULL;
    if (!p) return SL_FAIL(SL_ERR_NOMEM, "%s: out of memory for %" PRIu64 " %s", g->path, n, what);
    memset((char *)p + *alloc * elem, 0, (size_t)((n - *alloc) * elem));
    *arr = p;
    *alloc = n;
    return SL_OK;
}

static uint64_t hash_bytes(const char *p, uint64_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

typedef sl_str (*name_fn)(const sl_gguf *g, int64_t i);
static sl_str kv_name(const sl_gguf *g, int64_t i) { return g->kv[i].key; }
static sl_str t_name(const sl_gguf *g, int64_t i) { return g->tensors[i].name; }

/* Put entry i in the table; returns the entry with an equal name, or -1. */
static int64_t slot_put(const sl_gguf *g, name_index *ix, name_fn nf, int64_t i) {
    sl_str s = nf(g, i);
    uint64_t h = hash_bytes(s.ptr, s.len) & (ix->cap - 1);
    while (ix->slot[h] >= 0) {
        sl_str o = nf(g, ix->slot[h]);
        if (o.len == s.len && memcmp(o.ptr, s.ptr, s.len) == 0) return ix->slot[h];
        h = (h + 1) & (ix->cap - 1);
    }
    ix->slot[h] = i;
    return -1;
}

/* Add entry i (entries 0..i-1 are in already); *dup = an earlier entry with the same name, or -1. */
static sl_status index_add(const sl_gguf *g, name_index *ix, name_fn nf, int64_t i, int64_t *dup) {
    *dup = -1;
    if ((uint64_t)i + 1 > ix->cap / 2) {
        uint64_t cap = ix->cap ? ix->cap * 2 : 16;
        int64_t *slot = sl_alloc_array(cap, sizeof *slot);
        if (!slot) return SL_FAIL(SL_ERR_NOMEM, "%s: out of memory for a name index of %" PRIu64, g->path, cap);
        memset(slot, 0xff, cap * sizeof *slot);
        sl_free(ix->slot);
        ix->slot = slot;
        ix->cap = cap;
        for (int64_t j = 0; j < i; j++) slot_put(g, ix, nf, j);
    }
    *dup = slot_put(g, ix, nf, i);
    return SL_OK;
}

static int64_t index_find(const sl_gguf *g, const name_index *ix, name_fn nf, const char *name) {
    if (!ix->slot) return -1;
    uint64_t n = strlen(name);
    uint64_t h = hash_bytes(name, n) & (ix->cap - 1);
    while (ix->slot[h] >= 0) {
        sl_str o = nf(g, ix->slot[h]);
        if (o.len == n && memcmp(o.ptr, name, n) == 0) return ix->slot[h];
        h = (h + 1) & (ix->cap - 1);
    }
    return -1;
}

/* ---- parse --------------------------------------------------------------- */

static sl_status parse_kv(sl_gguf *g, rd *r, uint64_t i) {
    sl_status st;
    if ((st = reserve(g, (void **)&g->kv, &g->kv_alloc, i + 1, sizeof *g->kv, "keys"))) return st;
    sl_gguf_kv *kv = &g->kv[i];
    fld f = {.i = i, .sub = -1};
    uint64_t at = r->off;
    if ((st = rd_str(r, &f, &kv->key))) return st;
    if (kv->key.len == 0) return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": empty key", g->path, FLD(&f), at);
    g->n_kv = (int64_t)i + 1; /* from here on, close() frees what the entry holds */
    f.name = kv->key;
    uint32_t type;
    at = r->off;
    if ((st = rd_u32(r, &f, &type))) return st;
    if (type >= SL_GGUF_VTYPE_COUNT)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s value type at offset %" PRIu64 ": unknown type %" PRIu32, g->path,
                       FLD(&f), at, type);
    kv->type = (sl_gguf_vtype)type;
    if ((st = rd_value(r, kv, &f))) return st;
    int64_t dup;
    if ((st = index_add(g, &g->kv_idx, kv_name, (int64_t)i, &dup))) return st;
    if (dup >= 0)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": duplicate key (also kv[%" PRId64 "])", g->path,
                       FLD(&f), (uint64_t)((const uint8_t *)kv->key.ptr - g->base) - 8, dup);
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
    return SL_OK;
}

static sl_status parse_tensor(sl_gguf *g, rd *r, uint64_t i) {
    sl_status st;
    if ((st = reserve(g, (void **)&g->tensors, &g->t_alloc, i + 1, sizeof *g->tensors, "tensors"))) return st;
    sl_gguf_tensor *t = &g->tensors[i];
    fld f = {.tensor = true, .i = i, .sub = -1};
    uint64_t at = r->off;
    if ((st = rd_str(r, &f, &t->name))) return st;
    if (t->name.len == 0 || t->name.len >= GGUF_MAX_NAME)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": name length %" PRIu64 " is not in 1..%d",
                       g->path, FLD(&f), at, t->name.len, GGUF_MAX_NAME - 1);
    g->n_tensors = (int64_t)i + 1;
    f.name = t->name;
    f.part = "n_dims";
    at = r->off;
    if ((st = rd_u32(r, &f, &t->n_dims))) return st;
    if (t->n_dims == 0 || t->n_dims > SL_GGUF_MAX_DIMS)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": %" PRIu32 " dimensions (expected 1..%d)",
                       g->path, FLD(&f), at, t->n_dims, SL_GGUF_MAX_DIMS);
    int64_t nel = 1;
    for (uint32_t d = 0; d < SL_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    f.part = "ne";
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v;
        at = r->off;
        f.sub = d;
        if ((st = rd_u64(r, &f, &v))) return st;
        if (v > INT64_MAX)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": dimension %" PRId64 " is negative",
                           g->path, FLD(&f), at, (int64_t)v);
        if (v != 0 && nel > INT64_MAX / (int64_t)v)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": dimension %" PRIu64
                           " makes the element count overflow 64 bits", g->path, FLD(&f), at, v);
        t->ne[d] = (int64_t)v;
        nel *= (int64_t)v;
    }
    uint32_t type;
    at = r->off;
    f.part = "type";
    f.sub = -1;
    if ((st = rd_u32(r, &f, &type))) return st;
    const sl_type_info *ti = sl_type_get(type);
    if (!ti)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": unknown tensor type %" PRIu32, g->path, FLD(&f),
                       at, type);
    t->type = (sl_type)type;
    char tn[ESC_CAP];
    if (t->ne[0] % ti->blck != 0)
        return SL_FAIL(SL_ERR_FORMAT, "%s: tensor '%s' ne[0] = %" PRId64 " is not a multiple of the %s block size %"
                       PRIu32, g->path, esc(tn, t->name.ptr, t->name.len), t->ne[0], ti->name, ti->blck);
    /* bytes = (ne0/blck)*size * ne1*ne2*ne3, overflow-checked */
    uint64_t nb = (uint64_t)(t->ne[0] / ti->blck);
    bool over = nb != 0 && ti->size > UINT64_MAX / nb;
    nb *= ti->size;
    for (uint32_t d = 1; d < SL_GGUF_MAX_DIMS && !over; d++) {
        uint64_t v = (uint64_t)t->ne[d];
        over = v != 0 && nb > UINT64_MAX / v;
        nb *= v;
    }
    if (over)
        return SL_FAIL(SL_ERR_FORMAT, "%s: tensor '%s': byte size of %" PRId64 "x%" PRId64 "x%" PRId64 "x%" PRId64
                       " %s overflows 64 bits", g->path, esc(tn, t->name.ptr, t->name.len), t->ne[0], t->ne[1], t->ne[2],
                       t->ne[3], ti->name);
    t->nbytes = nb;
    at = r->off;
    f.part = "offset";
    if ((st = rd_u64(r, &f, &t->offset))) return st;
    if (t->offset % g->alignment != 0)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s at offset %" PRIu64 ": data offset %" PRIu64
                       " is not a multiple of the alignment %" PRIu32, g->path, FLD(&f), at, t->offset, g->alignment);
    int64_t dup;
    if ((st = index_add(g, &g->t_idx, t_name, (int64_t)i, &dup))) return st;
    if (dup >= 0)
        return SL_FAIL(SL_ERR_FORMAT, "%s: tensor[%" PRIu64 "] '%s': duplicate tensor name (also tensor[%" PRId64
                       "])", g->path, i, esc(tn, t->name.ptr, t->name.len), dup);
    return SL_OK;
}

static sl_status parse(sl_gguf *g) {
    sl_status st;
    rd r = {g->base, 0, g->size, g->path};
    const uint8_t *magic = NULL;
    if ((st = rd_bytes(&r, &(fld){.plain = "magic"}, 4, &magic))) return st;
    if (memcmp(magic, "GGUF", 4) != 0)
        return SL_FAIL(SL_ERR_FORMAT, "%s: magic at offset 0: expected \"GGUF\", found bytes %02x %02x %02x %02x "
                       "(not a GGUF file)", g->path, magic[0], magic[1], magic[2], magic[3]);
    if ((st = rd_u32(&r, &(fld){.plain = "version"}, &g->version))) return st;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "%s: version at offset 4: the file is big-endian (version field 0x%08"
                       PRIx32 "); only little-endian GGUF is supported", g->path, g->version);
    if (g->version != 2 && g->version != 3)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "%s: version at offset 4: GGUF version %" PRIu32
                       " is not supported (expected 2 or 3)", g->path, g->version);
    uint64_t n_tensors, n_kv;
    uint64_t at_nt = r.off;
    if ((st = rd_u64(&r, &(fld){.plain = "tensor_count"}, &n_tensors))) return st;
    uint64_t at_nkv = r.off;
    if ((st = rd_u64(&r, &(fld){.plain = "kv_count"}, &n_kv))) return st;
    /* each kv needs >= 14 bytes (key length 8 + 1, type 4, value 1) */
    if (n_kv > remain(&r) / 14)
        return SL_FAIL(SL_ERR_FORMAT, "%s: kv_count at offset %" PRIu64 ": %" PRIu64
                       " key/value pairs cannot fit in the %" PRIu64 " bytes that remain",
                       g->path, at_nkv, n_kv, remain(&r));
    /* each tensor info needs >= 33 bytes (name 8 + 1, n_dims 4, one dim 8, type 4, offset 8) */
    if (n_tensors > remain(&r) / 33)
        return SL_FAIL(SL_ERR_FORMAT, "%s: tensor_count at offset %" PRIu64 ": %" PRIu64
                       " tensors cannot fit in the %" PRIu64 " bytes that remain",
                       g->path, at_nt, n_tensors, remain(&r));

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++)
        if ((st = parse_kv(g, &r, i))) return st;
    for (uint64_t i = 0; i < n_tensors; i++)
        if ((st = parse_tensor(g, &r, i))) return st;

    /* r.off <= size and alignment <= 2^31, so this cannot wrap */
    g->data_off = r.off + (g->alignment - r.off % g->alignment) % g->alignment;
    if (n_tensors > 0 && g->data_off > g->size)
        return SL_FAIL(SL_ERR_FORMAT, "%s: data section at offset %" PRIu64 " (tensor infos end at %" PRIu64
                       ", padded to alignment %" PRIu32 ") is past the end of the file (size %" PRIu64 ")",
                       g->path, g->data_off, r.off, g->alignment, g->size);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        sl_gguf_tensor *t = &g->tensors[i];
        uint64_t room = g->size - g->data_off;
        char tn[ESC_CAP];
        if (t->offset > room)
            return SL_FAIL(SL_ERR_FORMAT, "%s: tensor '%s' offset: data offset %" PRIu64 " from the data section at %"
                           PRIu64 " is past the end of the file (size %" PRIu64 ")",
                           g->path, esc(tn, t->name.ptr, t->name.len), t->offset, g->data_off, g->size);
        if (t->nbytes > room - t->offset)
            return SL_FAIL(SL_ERR_FORMAT, "%s: tensor '%s' data: %" PRIu64 " bytes (%s %" PRId64 "x%" PRId64 "x%"
                           PRId64 "x%" PRId64 ") at data offset %" PRIu64 " run past the end of the file (%" PRIu64
                           " bytes remain there)", g->path, esc(tn, t->name.ptr, t->name.len), t->nbytes,
                           sl_type_name(t->type), t->ne[0], t->ne[1], t->ne[2], t->ne[3], t->offset,
                           room - t->offset);
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
    SL_ASSERT(out != NULL);
    *out = NULL;
    if (!buf && len) return SL_FAIL(SL_ERR_INVALID, "sl_gguf_open_memory: NULL buffer of %zu bytes", len);
    sl_gguf *g = sl_calloc(1, sizeof *g);
    char *pc = sl_strdup("<memory>");
    if (!g || !pc) {
        sl_free(g);
        sl_free(pc);
        return SL_FAIL(SL_ERR_NOMEM, "<memory>: out of memory");
    }
    g->path = pc;
    g->base = buf;
    g->size = len;
    return open_common(g, out);
}

sl_status sl_gguf_open(const char *path, sl_gguf **out) {
    SL_ASSERT(out != NULL && path != NULL);
    *out = NULL;
    sl_status st = SL_OK;
    sl_gguf *g = NULL;
    char *pc = NULL;
    void *p = MAP_FAILED;
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = SL_FAIL(SL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &sb) != 0) {
        st = SL_FAIL(SL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = SL_FAIL(SL_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if (sb.st_size < 4) { /* mmap cannot map 0 bytes; nothing shorter than the magic is GGUF anyway */
        st = SL_FAIL(SL_ERR_FORMAT, "%s: magic at offset 0: the file is %lld bytes, too short for the GGUF magic "
                     "(truncated or not a GGUF file)", path, (long long)sb.st_size);
        goto fail;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        st = SL_FAIL(SL_ERR_IO, "%s: file of %lld bytes does not fit the address space", path, (long long)sb.st_size);
        goto fail;
    }
    p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        st = SL_FAIL(SL_ERR_IO, "%s: cannot mmap %lld bytes: %s", path, (long long)sb.st_size, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    g = sl_calloc(1, sizeof *g);
    pc = sl_strdup(path);
    if (!g || !pc) {
        st = SL_FAIL(SL_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    g->path = pc;
    g->base = p;
    g->size = (uint64_t)sb.st_size;
    g->mapped = true;
    return open_common(g, out); /* owns the mapping from here */
fail:
    if (p != MAP_FAILED) munmap(p, (size_t)sb.st_size);
    if (fd >= 0) close(fd);
    sl_free(g);
    sl_free(pc);
    return st;
}

void sl_gguf_close(sl_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) sl_free(g->kv[i].str_offsets);
    sl_free(g->kv);
    sl_free(g->tensors);
    sl_free(g->kv_idx.slot);
    sl_free(g->t_idx.slot);
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

size_t sl_gguf_drop_pages(const sl_gguf *g, const void *p, size_t n) {
    const uintptr_t base = (uintptr_t)g->base, lo = (uintptr_t)p;
    if (!g->mapped || lo < base || n > g->size || lo - base > g->size - n) return 0;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = (lo + page - 1) & ~(page - 1), b = (lo + n) & ~(page - 1);
    if (b <= a) return 0;
    /* advice only: a failure changes nothing but the memory footprint */
    return madvise((void *)a, (size_t)(b - a), MADV_DONTNEED) == 0 ? (size_t)(b - a) : 0;
}
const char *sl_gguf_path(const sl_gguf *g) { return g->path; }
int64_t sl_gguf_n_kv(const sl_gguf *g) { return g->n_kv; }
const sl_gguf_kv *sl_gguf_kv_at(const sl_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}
int64_t sl_gguf_n_tensors(const sl_gguf *g) { return g->n_tensors; }

int64_t sl_gguf_n_params(const sl_gguf *g) {
    int64_t params = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const sl_gguf_tensor *t = &g->tensors[i];
        const int64_t nel = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; /* checked at open: fits 63 bits */
        params = params > INT64_MAX - nel ? INT64_MAX : params + nel;
    }
    return params;
}
const sl_gguf_tensor *sl_gguf_tensor_at(const sl_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const sl_gguf_kv *sl_gguf_find(const sl_gguf *g, const char *key) {
    int64_t i = index_find(g, &g->kv_idx, kv_name, key);
    return i >= 0 ? &g->kv[i] : NULL;
}

const sl_gguf_tensor *sl_gguf_find_tensor(const sl_gguf *g, const char *name) {
    int64_t i = index_find(g, &g->t_idx, t_name, name);
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

int64_t sl_gguf_kv_int(const sl_gguf_kv *kv) {
    SL_ASSERT(is_int_type(kv->type) || kv->type == SL_GGUF_BOOL);
    bool big;
    return kv->type == SL_GGUF_BOOL ? kv->data[0] : int_at(kv->type, kv->data, &big);
}

double sl_gguf_kv_float(const sl_gguf_kv *kv) {
    SL_ASSERT(kv->type == SL_GGUF_F32 || kv->type == SL_GGUF_F64);
    if (kv->type == SL_GGUF_F32) {
        uint32_t u = le32(kv->data);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    uint64_t u = le64(kv->data);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

sl_str sl_gguf_kv_str(const sl_gguf_kv *kv) {
    SL_ASSERT(kv->type == SL_GGUF_STRING);
    sl_str s = {(const char *)kv->data + 8, le64(kv->data)};
    return s;
}

double sl_gguf_arr_f64(const sl_gguf_kv *kv, uint64_t i) {
    SL_ASSERT(kv->type == SL_GGUF_ARRAY && kv->arr_type == SL_GGUF_F64 && i < kv->arr_n);
    uint64_t u = le64(kv->data + 8 * i);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

bool sl_gguf_arr_bool(const sl_gguf_kv *kv, uint64_t i) {
    SL_ASSERT(kv->type == SL_GGUF_ARRAY && kv->arr_type == SL_GGUF_BOOL && i < kv->arr_n);
    return kv->data[i] != 0;
}

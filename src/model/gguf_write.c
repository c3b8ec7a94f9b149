/*
 * gguf_write.c — GGUF v3 writer (see gguf_write.h).
 *
 * File layout written: "GGUF", u32 version 3, u64 n_tensors, u64 n_kv;
 * n_kv × (string key, u32 type, value); n_tensors × (string name, u32 n_dims,
 * n_dims × i64 ne, u32 type, u64 offset); zero padding to the alignment;
 * then each tensor's bytes followed by zero padding to the alignment. All
 * integers little-endian; strings are a u64 length and the bytes.
 *
 * Key/values are stored encoded (`val` holds exactly the bytes that follow
 * the type field in the file), which makes copying from a reader a plain
 * byte copy. Output goes through stdio with a large buffer; every fwrite,
 * fflush and fclose is checked, so a full disk surfaces as SL_ERR_IO naming
 * the file and the offset.
 */
#include "gguf_write.h"

#include "core/alloc.h"
#include "core/status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define GGUF_VERSION 3
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64 /* ggml's GGML_MAX_NAME, terminator included */
#define IO_BUFFER (1u << 20)

static const uint8_t VSIZE[SL_GGUF_VTYPE_COUNT] = {
    [SL_GGUF_U8] = 1, [SL_GGUF_I8] = 1, [SL_GGUF_U16] = 2, [SL_GGUF_I16] = 2,
    [SL_GGUF_U32] = 4, [SL_GGUF_I32] = 4, [SL_GGUF_F32] = 4, [SL_GGUF_BOOL] = 1,
    [SL_GGUF_U64] = 8, [SL_GGUF_I64] = 8, [SL_GGUF_F64] = 8,
};

typedef struct wkv {
    char *key;
    size_t key_len;
    sl_gguf_vtype type;
    uint8_t *val; /* encoded value bytes */
    size_t len;
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t n_dims;
    int64_t ne[SL_GGUF_MAX_DIMS];
    sl_type type;
    uint64_t nbytes;
    uint64_t offset; /* from the start of the data section; set at begin_data */
} wtensor;

enum { ST_BUILD, ST_DATA, ST_DONE, ST_FAILED };

struct sl_gguf_writer {
    char *path;
    FILE *f;
    char *iobuf;
    int state;
    wkv *kv;
    int64_t n_kv, kv_cap;
    wtensor *t;
    int64_t n_t, t_cap;
    uint32_t alignment;
    int64_t cur;       /* tensor being written */
    uint64_t cur_done; /* bytes of it written */
    uint64_t off;      /* file offset */
};

/* ---- encoding buffer ----------------------------------------------------- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} buf;

static void buf_put(buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX - b->n) {
        b->oom = true;
        return;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap = cap > SIZE_MAX / 2 ? b->n + n : cap * 2;
        uint8_t *p = sl_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void buf_le(buf *b, uint64_t v, int nbytes) {
    uint8_t tmp[8];
    for (int i = 0; i < nbytes; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, tmp, (size_t)nbytes);
}

static void buf_str(buf *b, const char *s, uint64_t len) {
    buf_le(b, len, 8);
    buf_put(b, s, (size_t)len);
}

/* Encode element i of a C array of scalars of GGUF type t. */
static void buf_scalar(buf *b, sl_gguf_vtype t, const void *data, uint64_t i) {
    switch (t) {
    case SL_GGUF_U8: buf_le(b, ((const uint8_t *)data)[i], 1); break;
    case SL_GGUF_I8: buf_le(b, (uint8_t)((const int8_t *)data)[i], 1); break;
    case SL_GGUF_U16: buf_le(b, ((const uint16_t *)data)[i], 2); break;
    case SL_GGUF_I16: buf_le(b, (uint16_t)((const int16_t *)data)[i], 2); break;
    case SL_GGUF_U32: buf_le(b, ((const uint32_t *)data)[i], 4); break;
    case SL_GGUF_I32: buf_le(b, (uint32_t)((const int32_t *)data)[i], 4); break;
    case SL_GGUF_U64: buf_le(b, ((const uint64_t *)data)[i], 8); break;
    case SL_GGUF_I64: buf_le(b, (uint64_t)((const int64_t *)data)[i], 8); break;
    case SL_GGUF_BOOL: buf_le(b, ((const bool *)data)[i] ? 1 : 0, 1); break;
    case SL_GGUF_F32: {
        uint32_t u;
        memcpy(&u, (const float *)data + i, 4);
        buf_le(b, u, 4);
        break;
    }
    case SL_GGUF_F64: {
        uint64_t u;
        memcpy(&u, (const double *)data + i, 8);
        buf_le(b, u, 8);
        break;
    }
    default: SL_ASSERT(!"not a scalar type");
    }
}

/* ---- key/values ---------------------------------------------------------- */

static sl_status check_state(const sl_gguf_writer *w, int want, const char *what) {
    if (w->state == ST_FAILED)
        return SL_FAIL(SL_ERR_INVALID, "%s: %s: the writer failed earlier (%s)", w->path, what, "see the first error");
    if (w->state != want) {
        static const char *names[] = {"before begin_data", "writing data", "finished", "failed"};
        return SL_FAIL(SL_ERR_INVALID, "%s: %s is not allowed now (writer is %s)", w->path, what, names[w->state]);
    }
    return SL_OK;
}

static int64_t find_key(const sl_gguf_writer *w, const char *key, size_t len) {
    for (int64_t i = 0; i < w->n_kv; i++)
        if (w->kv[i].key_len == len && memcmp(w->kv[i].key, key, len) == 0) return i;
    return -1;
}

/* Store (key, type, encoded value), taking ownership of b->p. */
static sl_status put_kv(sl_gguf_writer *w, const char *key, size_t key_len, sl_gguf_vtype type, buf *b) {
    sl_status st = check_state(w, ST_BUILD, "setting a key");
    char *k = NULL;
    if (st) goto fail;
    if (!key || key_len == 0) {
        st = SL_FAIL(SL_ERR_INVALID, "%s: empty key", w->path);
        goto fail;
    }
    if (b->oom) {
        st = SL_FAIL(SL_ERR_NOMEM, "%s: key '%.*s': out of memory for its value", w->path, (int)key_len, key);
        goto fail;
    }
    int64_t i = find_key(w, key, key_len);
    if (i < 0) {
        k = sl_strndup(key, key_len);
        if (!k) {
            st = SL_FAIL(SL_ERR_NOMEM, "%s: key '%.*s': out of memory", w->path, (int)key_len, key);
            goto fail;
        }
        if (w->n_kv == w->kv_cap) {
            int64_t cap = w->kv_cap ? w->kv_cap * 2 : 32;
            wkv *nk = sl_realloc(w->kv, (size_t)cap * sizeof *nk);
            if (!nk) {
                st = SL_FAIL(SL_ERR_NOMEM, "%s: out of memory for %" PRId64 " keys", w->path, cap);
                goto fail;
            }
            w->kv = nk;
            w->kv_cap = cap;
        }
        i = w->n_kv++;
        w->kv[i].key = k;
        w->kv[i].key_len = key_len;
        w->kv[i].val = NULL;
    }
    sl_free(w->kv[i].val);
    w->kv[i].type = type;
    w->kv[i].val = b->p;
    w->kv[i].len = b->n;
    b->p = NULL;
    return SL_OK;
fail:
    sl_free(k);
    sl_free(b->p);
    b->p = NULL;
    return st;
}

static sl_status set_scalar(sl_gguf_writer *w, const char *key, sl_gguf_vtype t, const void *v) {
    buf b = {0};
    buf_scalar(&b, t, v, 0);
    return put_kv(w, key, key ? strlen(key) : 0, t, &b);
}

sl_status sl_gguf_writer_set_u8(sl_gguf_writer *w, const char *key, uint8_t v) { return set_scalar(w, key, SL_GGUF_U8, &v); }
sl_status sl_gguf_writer_set_i8(sl_gguf_writer *w, const char *key, int8_t v) { return set_scalar(w, key, SL_GGUF_I8, &v); }
sl_status sl_gguf_writer_set_u16(sl_gguf_writer *w, const char *key, uint16_t v) { return set_scalar(w, key, SL_GGUF_U16, &v); }
sl_status sl_gguf_writer_set_i16(sl_gguf_writer *w, const char *key, int16_t v) { return set_scalar(w, key, SL_GGUF_I16, &v); }
sl_status sl_gguf_writer_set_u32(sl_gguf_writer *w, const char *key, uint32_t v) { return set_scalar(w, key, SL_GGUF_U32, &v); }
sl_status sl_gguf_writer_set_i32(sl_gguf_writer *w, const char *key, int32_t v) { return set_scalar(w, key, SL_GGUF_I32, &v); }
sl_status sl_gguf_writer_set_u64(sl_gguf_writer *w, const char *key, uint64_t v) { return set_scalar(w, key, SL_GGUF_U64, &v); }
sl_status sl_gguf_writer_set_i64(sl_gguf_writer *w, const char *key, int64_t v) { return set_scalar(w, key, SL_GGUF_I64, &v); }
sl_status sl_gguf_writer_set_f32(sl_gguf_writer *w, const char *key, float v) { return set_scalar(w, key, SL_GGUF_F32, &v); }
sl_status sl_gguf_writer_set_f64(sl_gguf_writer *w, const char *key, double v) { return set_scalar(w, key, SL_GGUF_F64, &v); }
sl_status sl_gguf_writer_set_bool(sl_gguf_writer *w, const char *key, bool v) { return set_scalar(w, key, SL_GGUF_BOOL, &v); }

sl_status sl_gguf_writer_set_strn(sl_gguf_writer *w, const char *key, const char *s, uint64_t len) {
    buf b = {0};
    if (!s && len) return SL_FAIL(SL_ERR_INVALID, "%s: key '%s': NULL string", w->path, key ? key : "");
    buf_str(&b, s ? s : "", len);
    return put_kv(w, key, key ? strlen(key) : 0, SL_GGUF_STRING, &b);
}

sl_status sl_gguf_writer_set_str(sl_gguf_writer *w, const char *key, const char *s) {
    if (!s) return SL_FAIL(SL_ERR_INVALID, "%s: key '%s': NULL string", w->path, key ? key : "");
    return sl_gguf_writer_set_strn(w, key, s, strlen(s));
}

sl_status sl_gguf_writer_set_arr(sl_gguf_writer *w, const char *key, sl_gguf_vtype elem, const void *data,
                                 uint64_t n) {
    buf b = {0};
    if ((unsigned)elem >= SL_GGUF_VTYPE_COUNT || elem == SL_GGUF_STRING || elem == SL_GGUF_ARRAY)
        return SL_FAIL(SL_ERR_INVALID, "%s: key '%s': array element type %d is not a scalar type (use "
                       "sl_gguf_writer_set_arr_str for strings; nested arrays are not allowed)",
                       w->path, key ? key : "", (int)elem);
    if (n && !data) return SL_FAIL(SL_ERR_INVALID, "%s: key '%s': NULL array data", w->path, key ? key : "");
    if (n > (SIZE_MAX - 16) / VSIZE[elem])
        return SL_FAIL(SL_ERR_INVALID, "%s: key '%s': array of %" PRIu64 " elements is too large", w->path,
                       key ? key : "", n);
    buf_le(&b, (uint32_t)elem, 4);
    buf_le(&b, n, 8);
    for (uint64_t i = 0; i < n && !b.oom; i++) buf_scalar(&b, elem, data, i);
    return put_kv(w, key, key ? strlen(key) : 0, SL_GGUF_ARRAY, &b);
}

sl_status sl_gguf_writer_set_arr_str(sl_gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    buf b = {0};
    if (n && !strs) return SL_FAIL(SL_ERR_INVALID, "%s: key '%s': NULL string array", w->path, key ? key : "");
    buf_le(&b, SL_GGUF_STRING, 4);
    buf_le(&b, n, 8);
    for (uint64_t i = 0; i < n && !b.oom; i++) {
        if (!strs[i]) {
            sl_free(b.p);
            return SL_FAIL(SL_ERR_INVALID, "%s: key '%s': string %" PRIu64 " is NULL", w->path, key ? key : "", i);
        }
        buf_str(&b, strs[i], strlen(strs[i]));
    }
    return put_kv(w, key, key ? strlen(key) : 0, SL_GGUF_ARRAY, &b);
}

static uint64_t rd_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

sl_status sl_gguf_writer_copy_kv(sl_gguf_writer *w, const sl_gguf_kv *kv) {
    buf b = {0};
    /* The reader validated the value, and the file is little-endian like
     * our output: the value bytes are copied as they are. */
    if (kv->type == SL_GGUF_STRING) {
        uint64_t len = rd_le64(kv->data);
        buf_put(&b, kv->data, (size_t)(8 + len));
    } else if (kv->type == SL_GGUF_ARRAY) {
        buf_le(&b, (uint32_t)kv->arr_type, 4);
        buf_le(&b, kv->arr_n, 8);
        uint64_t bytes = 0;
        if (kv->arr_type == SL_GGUF_STRING) {
            if (kv->arr_n) {
                sl_str last = sl_gguf_arr_str(kv, kv->arr_n - 1);
                bytes = kv->str_offsets[kv->arr_n - 1] + 8 + last.len;
            }
        } else {
            bytes = kv->arr_n * VSIZE[kv->arr_type];
        }
        buf_put(&b, kv->data, (size_t)bytes);
    } else {
        SL_ASSERT((unsigned)kv->type < SL_GGUF_VTYPE_COUNT);
        buf_put(&b, kv->data, VSIZE[kv->type]);
    }
    return put_kv(w, kv->key.ptr, (size_t)kv->key.len, kv->type, &b);
}

sl_status sl_gguf_writer_copy_prefix(sl_gguf_writer *w, const sl_gguf *g, const char *prefix, int64_t *n_copied) {
    size_t plen = strlen(prefix);
    int64_t n = 0;
    sl_status st = SL_OK;
    for (int64_t i = 0; i < sl_gguf_n_kv(g); i++) {
        const sl_gguf_kv *kv = sl_gguf_kv_at(g, i);
        if (kv->key.len < plen || memcmp(kv->key.ptr, prefix, plen) != 0) continue;
        if ((st = sl_gguf_writer_copy_kv(w, kv))) {
            st = sl_err_prefix(st, "copying keys '%s*' from %s", prefix, sl_gguf_path(g));
            goto fail;
        }
        n++;
    }
fail:
    if (n_copied) *n_copied = n;
    return st;
}

int64_t sl_gguf_writer_n_kv(const sl_gguf_writer *w) { return w->n_kv; }

bool sl_gguf_writer_remove(sl_gguf_writer *w, const char *key) {
    if (w->state != ST_BUILD) return false;
    int64_t i = find_key(w, key, strlen(key));
    if (i < 0) return false;
    sl_free(w->kv[i].key);
    sl_free(w->kv[i].val);
    memmove(&w->kv[i], &w->kv[i + 1], (size_t)(w->n_kv - i - 1) * sizeof *w->kv);
    w->n_kv--;
    return true;
}

/* ---- tensors ------------------------------------------------------------- */

sl_status sl_gguf_writer_add_tensor(sl_gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                                    sl_type type) {
    sl_status st = check_state(w, ST_BUILD, "adding a tensor");
    char *nm = NULL;
    if (st) return st;
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= GGUF_MAX_NAME)
        return SL_FAIL(SL_ERR_INVALID, "%s: tensor name '%s': length %zu is not in 1..%d", w->path,
                       name ? name : "", len, GGUF_MAX_NAME - 1);
    if (n_dims == 0 || n_dims > SL_GGUF_MAX_DIMS)
        return SL_FAIL(SL_ERR_INVALID, "%s: tensor '%s': %" PRIu32 " dimensions (expected 1..%d)", w->path, name,
                       n_dims, SL_GGUF_MAX_DIMS);
    const sl_type_info *ti = sl_type_get((uint32_t)type);
    if (!ti) return SL_FAIL(SL_ERR_INVALID, "%s: tensor '%s': unknown type %d", w->path, name, (int)type);
    uint64_t nb = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 1)
            return SL_FAIL(SL_ERR_INVALID, "%s: tensor '%s': ne[%" PRIu32 "] = %" PRId64 " (must be >= 1)", w->path,
                           name, d, ne[d]);
        uint64_t v = d == 0 ? (uint64_t)ne[0] / ti->blck * ti->size : (uint64_t)ne[d];
        if (d == 0 && ne[0] % ti->blck != 0)
            return SL_FAIL(SL_ERR_INVALID, "%s: tensor '%s': ne[0] = %" PRId64 " is not a multiple of the %s block "
                           "size %" PRIu32, w->path, name, ne[0], ti->name, ti->blck);
        if (nb > (UINT64_MAX / 2) / v)
            return SL_FAIL(SL_ERR_INVALID, "%s: tensor '%s': byte size overflows", w->path, name);
        nb *= v;
    }
    for (int64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return SL_FAIL(SL_ERR_INVALID, "%s: tensor '%s' added twice", w->path, name);
    nm = sl_strdup(name);
    if (!nm) {
        st = SL_FAIL(SL_ERR_NOMEM, "%s: tensor '%s': out of memory", w->path, name);
        goto fail;
    }
    if (w->n_t == w->t_cap) {
        int64_t cap = w->t_cap ? w->t_cap * 2 : 64;
        wtensor *nt = sl_realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) {
            st = SL_FAIL(SL_ERR_NOMEM, "%s: out of memory for %" PRId64 " tensors", w->path, cap);
            goto fail;
        }
        w->t = nt;
        w->t_cap = cap;
    }
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < SL_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->type = type;
    t->nbytes = nb;
    return SL_OK;
fail:
    sl_free(nm);
    return st;
}

int64_t sl_gguf_writer_n_tensors(const sl_gguf_writer *w) { return w->n_t; }

uint64_t sl_gguf_writer_tensor_nbytes(const sl_gguf_writer *w, int64_t i) {
    SL_ASSERT(i >= 0 && i < w->n_t);
    return w->t[i].nbytes;
}

uint64_t sl_gguf_writer_offset(const sl_gguf_writer *w) { return w->off; }

/* ---- output -------------------------------------------------------------- */

static sl_status io_fail(sl_gguf_writer *w, const char *what, int err) {
    w->state = ST_FAILED;
    return SL_FAIL(SL_ERR_IO, "%s: %s failed at offset %" PRIu64 ": %s", w->path, what, w->off,
                   err ? strerror(err) : "unknown error");
}

static sl_status out(sl_gguf_writer *w, const void *p, size_t n) {
    if (n == 0) return SL_OK;
    errno = 0;
    if (fwrite(p, 1, n, w->f) != n) return io_fail(w, "write", errno);
    w->off += n;
    return SL_OK;
}

static sl_status out_le(sl_gguf_writer *w, uint64_t v, int nbytes) {
    uint8_t tmp[8];
    for (int i = 0; i < nbytes; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    return out(w, tmp, (size_t)nbytes);
}

static sl_status out_pad(sl_gguf_writer *w) {
    static const uint8_t zeros[256];
    uint64_t pad = (w->alignment - w->off % w->alignment) % w->alignment;
    sl_status st = SL_OK;
    while (pad && !st) {
        size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        st = out(w, zeros, k);
        pad -= k;
    }
    return st;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

sl_status sl_gguf_writer_begin_data(sl_gguf_writer *w) {
    sl_status st = check_state(w, ST_BUILD, "begin_data");
    if (st) return st;
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ia = find_key(w, "general.alignment", strlen("general.alignment"));
    if (ia >= 0) {
        const wkv *kv = &w->kv[ia];
        uint32_t a = kv->type == SL_GGUF_U32 ? (uint32_t)(kv->val[0] | kv->val[1] << 8 | kv->val[2] << 16 |
                                                         (uint32_t)kv->val[3] << 24)
                                             : 0;
        if (kv->type != SL_GGUF_U32 || a == 0 || (a & (a - 1)) != 0) {
            w->state = ST_FAILED;
            return SL_FAIL(SL_ERR_INVALID, "%s: general.alignment must be a u32 power of two (got type %s, value %"
                           PRIu32 ")", w->path, sl_vtype_name(kv->type), a);
        }
        w->alignment = a;
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off = align_up(off + w->t[i].nbytes, w->alignment);
    }

    w->f = fopen(w->path, "wb");
    if (!w->f) {
        int e = errno;
        w->state = ST_FAILED;
        return SL_FAIL(SL_ERR_IO, "%s: cannot create: %s", w->path, strerror(e));
    }
    w->iobuf = sl_malloc(IO_BUFFER);
    if (w->iobuf) setvbuf(w->f, w->iobuf, _IOFBF, IO_BUFFER);
    w->off = 0;
    if ((st = out(w, "GGUF", 4)) || (st = out_le(w, GGUF_VERSION, 4)) || (st = out_le(w, (uint64_t)w->n_t, 8)) ||
        (st = out_le(w, (uint64_t)w->n_kv, 8)))
        goto fail;
    for (int64_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kv[i];
        if ((st = out_le(w, kv->key_len, 8)) || (st = out(w, kv->key, kv->key_len)) ||
            (st = out_le(w, (uint32_t)kv->type, 4)) || (st = out(w, kv->val, kv->len)))
            goto fail;
    }
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        size_t nl = strlen(t->name);
        if ((st = out_le(w, nl, 8)) || (st = out(w, t->name, nl)) || (st = out_le(w, t->n_dims, 4)))
            goto fail;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if ((st = out_le(w, (uint64_t)t->ne[d], 8))) goto fail;
        if ((st = out_le(w, (uint32_t)t->type, 4)) || (st = out_le(w, t->offset, 8))) goto fail;
    }
    if ((st = out_pad(w))) goto fail;
    w->state = ST_DATA;
    w->cur = 0;
    w->cur_done = 0;
    return SL_OK;
fail:
    w->state = ST_FAILED;
    return st;
}

sl_status sl_gguf_writer_write(sl_gguf_writer *w, const void *bytes, size_t n) {
    sl_status st = check_state(w, ST_DATA, "writing tensor data");
    if (st) return st;
    if (n == 0) return SL_OK;
    if (w->cur >= w->n_t) {
        w->state = ST_FAILED;
        return SL_FAIL(SL_ERR_INVALID, "%s: %zu bytes of tensor data written after the last tensor was complete",
                       w->path, n);
    }
    wtensor *t = &w->t[w->cur];
    uint64_t need = t->nbytes - w->cur_done;
    if ((uint64_t)n > need) {
        w->state = ST_FAILED;
        return SL_FAIL(SL_ERR_INVALID, "%s: tensor '%s': write of %zu bytes, but only %" PRIu64 " of its %" PRIu64
                       " bytes remain", w->path, t->name, n, need, t->nbytes);
    }
    if ((st = out(w, bytes, n))) return st;
    w->cur_done += n;
    if (w->cur_done == t->nbytes) {
        if ((st = out_pad(w))) return st;
        w->cur++;
        w->cur_done = 0;
    }
    return SL_OK;
}

sl_status sl_gguf_writer_finish(sl_gguf_writer *w) {
    sl_status st = check_state(w, ST_DATA, "finish");
    if (st) return st;
    if (w->cur < w->n_t) {
        const wtensor *t = &w->t[w->cur];
        w->state = ST_FAILED;
        return SL_FAIL(SL_ERR_INVALID, "%s: tensor '%s' got %" PRIu64 " of its %" PRIu64 " bytes (%" PRId64
                       " of %" PRId64 " tensors complete)", w->path, t->name, w->cur_done, t->nbytes, w->cur, w->n_t);
    }
    errno = 0;
    if (fflush(w->f) != 0) return io_fail(w, "flush", errno);
    FILE *f = w->f;
    w->f = NULL;
    errno = 0;
    if (fclose(f) != 0) return io_fail(w, "close", errno);
    w->state = ST_DONE;
    return SL_OK;
}

/* ---- lifetime ------------------------------------------------------------ */

sl_status sl_gguf_writer_create(const char *path, sl_gguf_writer **out_w) {
    *out_w = NULL;
    sl_gguf_writer *w = sl_calloc(1, sizeof *w);
    if (!w) return SL_FAIL(SL_ERR_NOMEM, "%s: out of memory", path);
    w->path = sl_strdup(path);
    if (!w->path) {
        sl_free(w);
        return SL_FAIL(SL_ERR_NOMEM, "%s: out of memory", path);
    }
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    *out_w = w;
    return SL_OK;
}

void sl_gguf_writer_destroy(sl_gguf_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    sl_free(w->iobuf);
    for (int64_t i = 0; i < w->n_kv; i++) {
        sl_free(w->kv[i].key);
        sl_free(w->kv[i].val);
    }
    sl_free(w->kv);
    for (int64_t i = 0; i < w->n_t; i++) sl_free(w->t[i].name);
    sl_free(w->t);
    sl_free(w->path);
    sl_free(w);
}

/*
 * gguf.h — GGUF reader (versions 2 and 3, little-endian).
 *
 * The whole file is validated at open: every count, string length, value
 * type, array element type, tensor rank, dimension, type, offset and the
 * alignment are checked against the bytes that remain, with overflow-safe
 * arithmetic. After a successful open every accessor is safe: strings point
 * into the mapping (not NUL-terminated; use sl_str), tensor data pointers are
 * inside the mapping and their byte sizes fit.
 *
 * Errors name the field, its value and the file offset where it was read.
 */
#ifndef SL_MODEL_GGUF_H
#define SL_MODEL_GGUF_H

#include "shardlm.h"
#include "core/types.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum sl_gguf_vtype {
    SL_GGUF_U8 = 0,
    SL_GGUF_I8 = 1,
    SL_GGUF_U16 = 2,
    SL_GGUF_I16 = 3,
    SL_GGUF_U32 = 4,
    SL_GGUF_I32 = 5,
    SL_GGUF_F32 = 6,
    SL_GGUF_BOOL = 7,
    SL_GGUF_STRING = 8,
    SL_GGUF_ARRAY = 9,
    SL_GGUF_U64 = 10,
    SL_GGUF_I64 = 11,
    SL_GGUF_F64 = 12,
    SL_GGUF_VTYPE_COUNT = 13,
} sl_gguf_vtype;

/* A string inside the file: `len` bytes at `ptr`, no terminator. */
typedef struct sl_str {
    const char *ptr;
    uint64_t len;
} sl_str;

typedef struct sl_gguf_kv {
    sl_str key;
    sl_gguf_vtype type;
    sl_gguf_vtype arr_type;   /* element type when type == ARRAY */
    uint64_t arr_n;           /* element count when type == ARRAY */
    const uint8_t *data;      /* scalar value, or first array element */
    uint64_t offset;          /* file offset of the value */
    uint64_t *str_offsets;    /* string arrays: offset of element i from data */
} sl_gguf_kv;

#define SL_GGUF_MAX_DIMS 4

typedef struct sl_gguf_tensor {
    sl_str name;
    uint32_t n_dims;
    int64_t ne[SL_GGUF_MAX_DIMS]; /* elements per dimension; unused dims are 1 */
    sl_type type;
    uint64_t offset;              /* from the start of the data section */
    uint64_t nbytes;
    const uint8_t *data;          /* inside the mapping */
} sl_gguf_tensor;

const char *sl_vtype_name(sl_gguf_vtype t);

uint32_t sl_gguf_version(const sl_gguf *g);
uint32_t sl_gguf_alignment(const sl_gguf *g);
uint64_t sl_gguf_size(const sl_gguf *g);            /* file size in bytes */
uint64_t sl_gguf_data_offset(const sl_gguf *g);     /* file offset of tensor data */
/* This process will not read bytes [p, p + n) of g's data soon (a copy of
 * them was made): the whole pages inside the range are unmapped from the
 * process (madvise MADV_DONTNEED) — a later read maps them again from the
 * file, so nothing is lost; they stay in the page cache, clean, for the
 * kernel to reclaim. Nothing happens for a GGUF opened from memory or for
 * a range outside the file. Returns the bytes given back. */
size_t sl_gguf_drop_pages(const sl_gguf *g, const void *p, size_t n);
const char *sl_gguf_path(const sl_gguf *g);         /* "<memory>" for memory images */

int64_t sl_gguf_n_kv(const sl_gguf *g);
const sl_gguf_kv *sl_gguf_kv_at(const sl_gguf *g, int64_t i);
const sl_gguf_kv *sl_gguf_find(const sl_gguf *g, const char *key); /* NULL when absent */

/* Typed getters. They fail (SL_ERR_FORMAT, message naming the key) when the
 * key is absent or its type does not fit; integer getters accept any integer
 * type whose value fits the target. */
sl_status sl_gguf_get_u32(const sl_gguf *g, const char *key, uint32_t *out);
sl_status sl_gguf_get_i32(const sl_gguf *g, const char *key, int32_t *out);
sl_status sl_gguf_get_u64(const sl_gguf *g, const char *key, uint64_t *out);
sl_status sl_gguf_get_f32(const sl_gguf *g, const char *key, float *out);
sl_status sl_gguf_get_bool(const sl_gguf *g, const char *key, bool *out);
sl_status sl_gguf_get_str(const sl_gguf *g, const char *key, sl_str *out);
/* Array access: element type and count; then elements by index. */
sl_status sl_gguf_get_arr(const sl_gguf *g, const char *key, sl_gguf_vtype *elem_type, uint64_t *n,
                          const sl_gguf_kv **kv_out);
sl_str sl_gguf_arr_str(const sl_gguf_kv *kv, uint64_t i);   /* string arrays */
float sl_gguf_arr_f32(const sl_gguf_kv *kv, uint64_t i);    /* F32 arrays */
int64_t sl_gguf_arr_int(const sl_gguf_kv *kv, uint64_t i);  /* any integer array (u64: the same bits) */
double sl_gguf_arr_f64(const sl_gguf_kv *kv, uint64_t i);   /* F64 arrays */
bool sl_gguf_arr_bool(const sl_gguf_kv *kv, uint64_t i);    /* BOOL arrays */

/* The value of a scalar entry (e.g. from sl_gguf_kv_at), by kind; the type
 * must fit (asserted): */
int64_t sl_gguf_kv_int(const sl_gguf_kv *kv);     /* integer types and bool (u64: the same bits) */
double sl_gguf_kv_float(const sl_gguf_kv *kv);    /* F32 or F64 */
sl_str sl_gguf_kv_str(const sl_gguf_kv *kv);      /* STRING */

/* Convenience: value of an optional key, or `def` when absent (errors when
 * present with the wrong type). */
sl_status sl_gguf_opt_u32(const sl_gguf *g, const char *key, uint32_t def, uint32_t *out);
sl_status sl_gguf_opt_f32(const sl_gguf *g, const char *key, float def, float *out);
sl_status sl_gguf_opt_bool(const sl_gguf *g, const char *key, bool def, bool *out);

int64_t sl_gguf_n_tensors(const sl_gguf *g);
const sl_gguf_tensor *sl_gguf_tensor_at(const sl_gguf *g, int64_t i);
const sl_gguf_tensor *sl_gguf_find_tensor(const sl_gguf *g, const char *name);
/* The parameters of every tensor (their elements; INT64_MAX where the sum overflows). */
int64_t sl_gguf_n_params(const sl_gguf *g);

/* Compare an sl_str with a C string. */
bool sl_str_eq(sl_str s, const char *c);

#endif

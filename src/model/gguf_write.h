/*
 * gguf_write.h — GGUF writer (version 3, little-endian).
 *
 * Use: create a writer for a path; set key/values and add tensor infos in
 * the order they should appear; sl_gguf_writer_begin_data() opens the file
 * and writes header, key/values, tensor infos and the padding before the
 * data section; then stream every tensor's bytes in the order the tensors
 * were added with sl_gguf_writer_write() (any number of calls per tensor);
 * sl_gguf_writer_finish() checks that every tensor got exactly its byte size
 * and closes the file with error checks.
 *
 * Design: key/values are kept already encoded (the bytes GGUF stores after
 * the type), so copying a key from an opened file and writing it are the
 * same operation; the writer copies everything it is given. Tensor data is
 * never held: only the caller's current chunk passes through stdio. Tensor
 * offsets are assigned at begin_data with `general.alignment` (u32 power of
 * two, 32 when the key is absent); padding between tensors and after the
 * last one is zero bytes written by the writer.
 *
 * Invariants: setting a key that exists replaces its value in place (its
 * position is kept); tensor names are 1..63 bytes and unique; a write never
 * runs past the end of the current tensor. Once a call fails the writer is
 * poisoned: later calls return SL_ERR_INVALID. The library never removes the
 * output file; a caller that wants no partial file left behind removes it.
 */
#ifndef SL_MODEL_GGUF_WRITE_H
#define SL_MODEL_GGUF_WRITE_H

#include "model/gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_gguf_writer sl_gguf_writer;

/* A writer that will write `path` (nothing is opened until begin_data). */
sl_status sl_gguf_writer_create(const char *path, sl_gguf_writer **out);
/* Closes the file if it is still open (without the finish checks). */
void sl_gguf_writer_destroy(sl_gguf_writer *w);

/* ---- key/values (before begin_data) ------------------------------------- */

sl_status sl_gguf_writer_set_u8(sl_gguf_writer *w, const char *key, uint8_t v);
sl_status sl_gguf_writer_set_i8(sl_gguf_writer *w, const char *key, int8_t v);
sl_status sl_gguf_writer_set_u16(sl_gguf_writer *w, const char *key, uint16_t v);
sl_status sl_gguf_writer_set_i16(sl_gguf_writer *w, const char *key, int16_t v);
sl_status sl_gguf_writer_set_u32(sl_gguf_writer *w, const char *key, uint32_t v);
sl_status sl_gguf_writer_set_i32(sl_gguf_writer *w, const char *key, int32_t v);
sl_status sl_gguf_writer_set_u64(sl_gguf_writer *w, const char *key, uint64_t v);
sl_status sl_gguf_writer_set_i64(sl_gguf_writer *w, const char *key, int64_t v);
sl_status sl_gguf_writer_set_f32(sl_gguf_writer *w, const char *key, float v);
sl_status sl_gguf_writer_set_f64(sl_gguf_writer *w, const char *key, double v);
sl_status sl_gguf_writer_set_bool(sl_gguf_writer *w, const char *key, bool v);
/* A NUL-terminated string; set_strn takes `len` bytes (may contain NUL). */
sl_status sl_gguf_writer_set_str(sl_gguf_writer *w, const char *key, const char *s);
sl_status sl_gguf_writer_set_strn(sl_gguf_writer *w, const char *key, const char *s, uint64_t len);

/* Array of `n` scalars of type `elem` (any type but STRING and ARRAY), given
 * as a C array of the matching type: uint8_t, int8_t, uint16_t, int16_t,
 * uint32_t, int32_t, float, bool, uint64_t, int64_t, double. */
sl_status sl_gguf_writer_set_arr(sl_gguf_writer *w, const char *key, sl_gguf_vtype elem, const void *data,
                                 uint64_t n);
/* Array of `n` NUL-terminated strings. */
sl_status sl_gguf_writer_set_arr_str(sl_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);

/* Copy one key/value of an opened file (value and type exactly). */
sl_status sl_gguf_writer_copy_kv(sl_gguf_writer *w, const sl_gguf_kv *kv);
/* Copy every key of `g` that starts with `prefix` (e.g. "tokenizer."), in
 * the file's order; *n_copied (may be NULL) gets their number. */
sl_status sl_gguf_writer_copy_prefix(sl_gguf_writer *w, const sl_gguf *g, const char *prefix, int64_t *n_copied);

int64_t sl_gguf_writer_n_kv(const sl_gguf_writer *w);
/* Remove a key; false when it was not set. */
bool sl_gguf_writer_remove(sl_gguf_writer *w, const char *key);

/* ---- tensors ------------------------------------------------------------- */

/* Add a tensor info: ggml shape (ne[0] = elements per row, a multiple of the
 * type's block size), 1..4 dimensions, each >= 1. */
sl_status sl_gguf_writer_add_tensor(sl_gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                                    sl_type type);
int64_t sl_gguf_writer_n_tensors(const sl_gguf_writer *w);
/* Byte size of tensor i's data. */
uint64_t sl_gguf_writer_tensor_nbytes(const sl_gguf_writer *w, int64_t i);

/* ---- output -------------------------------------------------------------- */

/* Open the file (truncating it) and write everything before the data. */
sl_status sl_gguf_writer_begin_data(sl_gguf_writer *w);
/* Append `n` bytes to the current tensor; moves to the next tensor when the
 * current one is complete. Fails when `n` is more than the current tensor
 * still needs. */
sl_status sl_gguf_writer_write(sl_gguf_writer *w, const void *bytes, size_t n);
/* Check that every tensor is complete, flush and close the file. */
sl_status sl_gguf_writer_finish(sl_gguf_writer *w);

/* Bytes written to the file so far (header included). */
uint64_t sl_gguf_writer_offset(const sl_gguf_writer *w);

#endif

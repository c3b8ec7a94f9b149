/*
 * alloc.h — the one allocation hook of libshardlm.
 *
 * All library allocations go through sl_malloc/sl_calloc/sl_realloc/sl_free so
 * tests can count live bytes and inject failures (sl_alloc_fail_after). Sizes
 * are checked for overflow (sl_calloc, sl_alloc_array).
 */
#ifndef SL_CORE_ALLOC_H
#define SL_CORE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *sl_malloc(size_t n);
void *sl_calloc(size_t count, size_t size);
void *sl_realloc(void *p, size_t n);
void sl_free(void *p);
/* malloc of count*size, NULL on overflow. */
void *sl_alloc_array(size_t count, size_t size);
/* Make *p (an array of *cap elements of elem bytes) hold at least `need`,
 * keeping its contents: capacity doubles from 16. False (leaving *p and *cap)
 * when memory is short or the size overflows. */
bool sl_grow(void **p, size_t *cap, size_t need, size_t elem);
/* 64-byte aligned allocation (free with sl_free_aligned). */
void *sl_malloc_aligned(size_t n);
void sl_free_aligned(void *p);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);

/* Testing: make the n-th allocation from now fail (-1 = never). */
void sl_alloc_fail_after(int64_t n);
/* Number of allocations made so far by the hook. */
uint64_t sl_alloc_count(void);

#endif

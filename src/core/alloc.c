/*
 * alloc.c — allocation hook with failure injection and counting.
 */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Buffers from this size up (weights, the KV pool, the bandwidth probe) are
 * 2 MiB-aligned and asked for transparent huge pages: they are read as long
 * streams, and with 4 KiB pages every 4 KiB of a stream costs a page walk
 * (for the software prefetches too) and restarts the hardware prefetcher.
 * Where THP is "madvise" (the default of most distributions) nothing else
 * gets huge pages. */
#define HUGE_MIN ((size_t)4 << 20)
#define HUGE_ALIGN ((size_t)2 << 20)

static _Atomic int64_t fail_after = -1;
static _Atomic uint64_t n_allocs;

void sl_alloc_fail_after(int64_t n) { atomic_store(&fail_after, n); }
uint64_t sl_alloc_count(void) { return atomic_load(&n_allocs); }

static int should_fail(void) {
    atomic_fetch_add(&n_allocs, 1);
    int64_t f = atomic_load(&fail_after);
    if (f < 0) return 0;
    if (f == 0) return 1;
    atomic_fetch_sub(&fail_after, 1);
    return 0;
}

void *sl_malloc(size_t n) {
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *sl_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    if (should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *sl_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void sl_free(void *p) { free(p); }

void *sl_alloc_array(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    return sl_malloc(count * size);
}

bool sl_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2) return false;
        c *= 2;
    }
    if (elem && c > SIZE_MAX / elem) return false;
    void *q = sl_realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

void *sl_malloc_aligned(size_t n) {
    if (should_fail()) return NULL;
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n) return NULL;
    if (rounded >= HUGE_MIN) {
        const size_t whole = (rounded + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1);
        if (whole < rounded || posix_memalign(&p, HUGE_ALIGN, whole) != 0) return NULL;
        (void)madvise(p, whole, MADV_HUGEPAGE); /* advice only: without THP the pages stay 4 KiB */
        return p;
    }
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) return NULL;
    return p;
}

void sl_free_aligned(void *p) { free(p); }

char *sl_strndup(const char *s, size_t n) {
    char *d = sl_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sl_strdup(const char *s) { return sl_strndup(s, strlen(s)); }

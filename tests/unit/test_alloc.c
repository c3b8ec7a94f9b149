/*
 * test_alloc.c — the allocation hook: alignment of small and large
 * sl_malloc_aligned buffers, the whole of a large one writable, overflow and
 * injected failures, and the transparent-huge-page advice on large buffers
 * (the kernel's own record of it, the "hg" flag of the mapping in
 * /proc/self/smaps, where this process can have THP at all).
 */
#include "harness.h"

#include "core/alloc.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The VmFlags line of the mapping that holds address p, or "" when not found. */
static void vm_flags_of(const void *p, char *out, size_t n) {
    out[0] = '\0';
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return;
    char line[512];
    bool inside = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's first line; field lines have a name */
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            size_t k = strlen(line + 8);
            if (k >= n) k = n - 1;
            memcpy(out, line + 8, k);
            out[k] = '\0';
            break;
        }
    }
    fclose(f);
}

TEST(aligned_small_and_large) {
    const size_t sizes[] = {1, 63, 64, 4095, (size_t)4 << 20, ((size_t)4 << 20) + 1, (size_t)9 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *p = sl_malloc_aligned(sizes[i]);
        CHECK_MSG(p != NULL, "size %zu", sizes[i]);
        if (!p) continue;
        CHECK_MSG((uintptr_t)p % 64 == 0, "size %zu: %p not 64-byte aligned", sizes[i], (void *)p);
        memset(p, 0xA5, sizes[i]);
        CHECK(p[0] == 0xA5 && p[sizes[i] - 1] == 0xA5);
        sl_free_aligned(p);
    }
}

TEST(aligned_overflow_and_injected_failure) {
    CHECK(sl_malloc_aligned(SIZE_MAX - 10) == NULL);
    sl_alloc_fail_after(0);
    CHECK(sl_malloc_aligned((size_t)8 << 20) == NULL);
    sl_alloc_fail_after(-1);
}

TEST(large_buffers_ask_for_huge_pages) {
    /* where the kernel has no THP, or this process may not use it (prctl PR_SET_THP_DISABLE), the advice
     * is refused: nothing to check */
    void *probe = mmap(NULL, (size_t)4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const bool thp = probe != MAP_FAILED && access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0 &&
                     madvise(probe, (size_t)4 << 20, MADV_HUGEPAGE) == 0;
    if (probe != MAP_FAILED) munmap(probe, (size_t)4 << 20);
    if (!thp) {
        printf("    (transparent huge pages unavailable here: advice not checked)\n");
        return;
    }
    uint8_t *big = sl_malloc_aligned((size_t)8 << 20), *small = sl_malloc_aligned(4096);
    CHECK(big && small);
    if (big && small) {
        char fb[256], fs[256];
        vm_flags_of(big + ((size_t)4 << 20), fb, sizeof fb);
        vm_flags_of(small, fs, sizeof fs);
        CHECK_MSG(strstr(fb, " hg") != NULL, "large buffer's mapping flags lack hg (MADV_HUGEPAGE):%s", fb);
        CHECK_MSG(strstr(fs, " hg") == NULL, "a small buffer's mapping got hg:%s", fs);
    }
    sl_free_aligned(big);
    sl_free_aligned(small);
}

/* sl_grow keeps the contents, doubles from 16, and on failure (overflow, memory) leaves the array as it was. */
TEST(grow_keeps_contents_and_fails_cleanly) {
    int32_t *a = NULL;
    size_t cap = 0;
    CHECK(sl_grow((void **)&a, &cap, 1, sizeof *a) && cap == 16 && a);
    for (int32_t i = 0; i < 16; i++) a[i] = i;
    CHECK(sl_grow((void **)&a, &cap, 100, sizeof *a) && cap == 128);
    bool kept = true;
    for (int32_t i = 0; i < 16; i++) kept &= a[i] == i;
    CHECK(kept);
    CHECK(sl_grow((void **)&a, &cap, 50, sizeof *a) && cap == 128); /* room enough: nothing moves */
    int32_t *before = a;
    CHECK(!sl_grow((void **)&a, &cap, SIZE_MAX / 2, sizeof *a) && a == before && cap == 128);
    sl_alloc_fail_after(0);
    CHECK(!sl_grow((void **)&a, &cap, 129, sizeof *a) && a == before && cap == 128);
    sl_alloc_fail_after(-1);
    sl_free(a);
}

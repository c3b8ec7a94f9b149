/*
 * filewatch.c — see filewatch.h.
 */
#include "core/filewatch.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void look(sl_filewatch *w) {
    for (int i = 0; i < w->n; i++) {
        struct stat st; /* (stat follows the symlinks a secret volume swaps) */
        w->now[i] = (sl_filewatch_sig){0};
        if (stat(w->paths[i], &st) == 0)
            w->now[i] = (sl_filewatch_sig){.dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino, .size = (uint64_t)st.st_size,
                                           .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec};
    }
}

void sl_filewatch_init(sl_filewatch *w, const char *const *paths, int n) {
    memset(w, 0, sizeof *w);
    for (int i = 0; i < n && w->n < SL_FILEWATCH_MAX; i++)
        if (paths[i]) w->paths[w->n++] = paths[i];
    look(w);
    sl_filewatch_take(w);
    w->next_check = mono_s() + 1;
}

bool sl_filewatch_changed(sl_filewatch *w) {
    const double t = mono_s();
    if (t < w->next_check) return false;
    w->next_check = t + 1;
    look(w);
    const size_t bytes = sizeof(sl_filewatch_sig) * (size_t)w->n;
    return memcmp(w->now, w->taken, bytes) != 0 && (!w->have_refused || memcmp(w->now, w->refused, bytes) != 0);
}

void sl_filewatch_take(sl_filewatch *w) {
    memcpy(w->taken, w->now, sizeof w->taken);
    w->have_refused = false;
}

void sl_filewatch_refuse(sl_filewatch *w) {
    memcpy(w->refused, w->now, sizeof w->refused);
    w->have_refused = true;
}

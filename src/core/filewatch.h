/*
 * filewatch.h — whether some files changed since they were last taken, by
 * their identity, size and modification time (what a Kubernetes secret
 * volume's swap or cert-manager's renewal changes), checked at most once a
 * second. A change is reported until it is taken (sl_filewatch_take) or
 * refused (sl_filewatch_refuse: the same files are not reported again, a
 * later change is); the caller serializes the calls.
 */
#ifndef SL_CORE_FILEWATCH_H
#define SL_CORE_FILEWATCH_H

#include <stdbool.h>
#include <stdint.h>

#define SL_FILEWATCH_MAX 3

typedef struct sl_filewatch_sig {
    uint64_t dev, ino, size;
    int64_t mtime_ns;
} sl_filewatch_sig;

typedef struct sl_filewatch {
    const char *paths[SL_FILEWATCH_MAX]; /* (the caller's strings) */
    int n;
    sl_filewatch_sig taken[SL_FILEWATCH_MAX], refused[SL_FILEWATCH_MAX], now[SL_FILEWATCH_MAX];
    bool have_refused;
    double next_check; /* monotonic seconds */
} sl_filewatch;

/* Watch paths[0, n) (NULLs skipped), taking them as they are now. */
void sl_filewatch_init(sl_filewatch *w, const char *const *paths, int n);
/* Whether the files differ from those taken (and from those refused), looked at once a second at most. */
bool sl_filewatch_changed(sl_filewatch *w);
/* The files as last looked at are now the ones in use / could not be used. */
void sl_filewatch_take(sl_filewatch *w);
void sl_filewatch_refuse(sl_filewatch *w);

#endif

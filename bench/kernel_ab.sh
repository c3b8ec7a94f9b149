#!/bin/sh
# A/B of one kernel table against the same table at an older commit, in one
# process (bench/kernel_ab.c: alternating slices, so the machine's drift
# cancels out). Builds src/compute/kernels_TABLE.c as REV had it, with the
# current headers and the Makefile's flags for that file, renames its global
# symbols (suffix _old), links it with build/libshardlm.a and runs
# build/kernel_ab with the remaining arguments.
#
#   sh bench/kernel_ab.sh TABLE REV TYPE K BYTES TOKENS [SECONDS]
#   sh bench/kernel_ab.sh amx HEAD Q4_0 2048 262144 16       (working tree vs HEAD, in L2)
#   sh bench/kernel_ab.sh avx512 HEAD~3 Q4_K 4096 268435456 1   (from memory)
#   sh bench/kernel_ab.sh avx512 HEAD ATTN 256 64 4         (attention: N_POS HEAD_DIM N_Q)
set -eu
[ $# -ge 6 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
TABLE=$1
REV=$2
shift 2
SRC=src/compute/kernels_$TABLE.c
[ -f "$SRC" ] || { echo "kernel_ab.sh: no $SRC" >&2; exit 2; }
BUILD=${BUILD:-build}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
make -s -j2 "$BUILD/libshardlm.a"
git show "$REV:$SRC" >"$TMP/old.c"
# the Makefile's compile command for this file, pointed at the old source
CMD=$(make -s -n -B "$BUILD/${SRC%.c}.o" | sed -n 's/^\(gcc\|cc\|clang\) /&/p' | grep -- "-c $SRC" | head -n 1)
[ -n "$CMD" ] || { echo "kernel_ab.sh: no compile command for $SRC" >&2; exit 1; }
CMD=$(printf '%s\n' "$CMD" | sed "s# -c $SRC # -Isrc/compute -c $TMP/old.c #; s# -o [^ ]*# -o $TMP/old.o#; s# -MMD -MP##")
sh -c "$CMD"
nm --defined-only -g "$TMP/old.o" | awk '{ print $3 " " $3 "_old" }' >"$TMP/syms"
objcopy --redefine-syms="$TMP/syms" "$TMP/old.o"
if [ "$TABLE" = amx ]; then
    INIT='sl_kernels_get("amx") && sl_kernels_amx_init_old(&k, sl_kernels_get("avx512"))'
    DECL='bool sl_kernels_amx_init_old(sl_kernels *k, const sl_kernels *avx512);'
else
    INIT="sl_kernels_${TABLE}_init_old(&k)"
    DECL="bool sl_kernels_${TABLE}_init_old(sl_kernels *k);"
fi
cat >"$TMP/glue.c" <<EOF
#include "compute/kernels.h"
$DECL
const sl_kernels *kernel_ab_old(void);
const sl_kernels *kernel_ab_old(void) {
    static sl_kernels k;
    return $INIT ? &k : 0;
}
EOF
cc -O2 -Iinclude -Isrc bench/kernel_ab.c "$TMP/glue.c" "$TMP/old.o" "$BUILD/libshardlm.a" -lm -pthread -o "$BUILD/kernel_ab"
"$BUILD/kernel_ab" "$@"

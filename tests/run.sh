#!/bin/sh
# Runs each test binary given as an argument from the repo root, and sums
# their "N passed, N failed" lines into one final line of the same form.
total_p=0; total_f=0; bad_bins=""
for t in "$@"; do
    echo "== $t"
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        echo "   (no result line: exit $rc, counted as one failure)"
        total_f=$((total_f + 1)); bad_bins="$bad_bins $t"; continue
    fi
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    total_p=$((total_p + p)); total_f=$((total_f + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "   (exit $rc with no failed case, counted as one failure)"
        total_f=$((total_f + 1))
    fi
    [ "$f" -ne 0 ] && bad_bins="$bad_bins $t"
done
[ -n "$bad_bins" ] && echo "failing:$bad_bins"
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]

#!/bin/sh
# shardlm against llama.cpp on this machine, in one run: for each model and
# thread count, `llama-bench -p P -n N` and `shardlm bench -p P -n N -b 1`
# take turns (which goes first alternates by round), then the batched
# decode of both (`llama-batched-bench -npp 1 -ntg N -npl B` and
# `shardlm bench -p 0 -b B`) when BATCH is set. Prints a Markdown table,
# one row per model, threads and round, with each ratio shardlm / llama.cpp.
# llama.cpp is not built here: point LLAMA_BIN at a build's bin/ folder.
#
#   LLAMA_BIN=DIR      folder with llama-bench (and llama-batched-bench for BATCH)
#   MODELS="A.gguf B.gguf"   THREADS="1 2"   ROUNDS=2
#   P=512  N=128  R=3  (repetitions within one run of each tool)
#   BATCH="4 16"       batched decode sizes ("" to skip)
#   BIN=build/shardlm
set -eu
BIN=${BIN:-build/shardlm}
LLAMA_BIN=${LLAMA_BIN:?set LLAMA_BIN to the bin/ folder of a llama.cpp build}
MODELS=${MODELS:?set MODELS to the GGUF files to compare}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
P=${P:-512}
N=${N:-128}
R=${R:-3}
BATCH=${BATCH-16}
command -v jq >/dev/null 2>&1 || { echo "vs-llamacpp.sh: needs jq" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# llama-bench's JSON: the mean tokens/s of its prompt test and of its decode test
llama_pp_tg() {
    "$LLAMA_BIN/llama-bench" -m "$1" -p "$P" -n "$N" -t "$2" -r "$R" -o json >"$TMP/l.json" 2>"$TMP/l.err" || {
        cat "$TMP/l.err" >&2
        exit 1
    }
    jq -r '[(.[] | select(.n_prompt > 0 and .n_gen == 0) | .avg_ts), (.[] | select(.n_gen > 0 and .n_prompt == 0) | .avg_ts)] | map(. * 10 | round / 10) | join(" ")' "$TMP/l.json"
}
ours_pp_tg() {
    "$BIN" bench -m "$1" -p "$P" -n "$N" -b 1 -t "$2" -r "$R" --bw-mib 0 --json >"$TMP/s.json" 2>"$TMP/s.err" || {
        cat "$TMP/s.err" >&2
        exit 1
    }
    jq -r '[.prompt_tps, .decode_tps] | map(. * 10 | round / 10) | join(" ")' "$TMP/s.json"
}
# generated tokens/s over all B sequences (llama-batched-bench's S_TG)
llama_batched() {
    "$LLAMA_BIN/llama-batched-bench" -m "$1" -c $(($3 * (N + 8))) -b 2048 -ub 512 -npp 1 -ntg "$N" -npl "$3" -t "$2" \
        --output-format jsonl >"$TMP/b.jsonl" 2>"$TMP/b.err" || {
        cat "$TMP/b.err" >&2
        exit 1
    }
    grep '^{' "$TMP/b.jsonl" | tail -n 1 | jq -r '.speed_tg * 10 | round / 10'
}
ours_batched() {
    "$BIN" bench -m "$1" -p 0 -n "$N" -b "$3" -t "$2" -r 1 --bw-mib 0 --json >"$TMP/s.json" 2>"$TMP/s.err" || {
        cat "$TMP/s.err" >&2
        exit 1
    }
    jq -r --arg b "$3" '.batched_tps[$b] * 10 | round / 10' "$TMP/s.json"
}
ratio() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.2f", $1 / $2; else printf "-" }'; }

printf '| model | threads | round | prompt %s: llama.cpp / shardlm (ratio) | decode: llama.cpp / shardlm (ratio) |' "$P"
for b in $BATCH; do printf ' batch %s: llama.cpp / shardlm (ratio) |' "$b"; done
printf '\n|---|---|---|---|---|'
for b in $BATCH; do printf -- '---|'; done
printf '\n'
round=1
while [ "$round" -le "$ROUNDS" ]; do
    for m in $MODELS; do
        for t in $THREADS; do
            if [ $((round % 2)) -eq 1 ]; then
                l=$(llama_pp_tg "$m" "$t")
                s=$(ours_pp_tg "$m" "$t")
            else
                s=$(ours_pp_tg "$m" "$t")
                l=$(llama_pp_tg "$m" "$t")
            fi
            lp=${l% *} lt=${l#* } sp=${s% *} st=${s#* }
            printf '| %s | %s | %s | %s / %s (%s) | %s / %s (%s) |' "$(basename "$m")" "$t" "$round" \
                "$lp" "$sp" "$(ratio "$sp" "$lp")" "$lt" "$st" "$(ratio "$st" "$lt")"
            for b in $BATCH; do
                if [ $((round % 2)) -eq 1 ]; then
                    lb=$(llama_batched "$m" "$t" "$b")
                    sb=$(ours_batched "$m" "$t" "$b")
                else
                    sb=$(ours_batched "$m" "$t" "$b")
                    lb=$(llama_batched "$m" "$t" "$b")
                fi
                printf ' %s / %s (%s) |' "$lb" "$sb" "$(ratio "$sb" "$lb")"
            done
            printf '\n'
        done
    done
    round=$((round + 1))
done

#!/bin/sh
# The figures of docs/PERF.md: `shardlm bench` on 1B-shape models (Llama-3.2-1B
# geometry, as ../shared/docs/REFERENCE.md) in Q4_0, Q8_0, F16 and a Q4_K_M
# type mix, at 1 and 2 threads, one JSON line per run on stdout.
# The models are written to $TMP (default /tmp, ~4.4 GB) and deleted at the end.
#   sh bench/perf.sh > perf.jsonl
# Environment: BIN (build/shardlm), TMP, THREADS ("1 2"), TYPES ("Q4_0 Q8_0 F16 Q4_K_M"),
# ARGS (extra bench flags, default "-p 512 -n 64 -b 1,4,16,64 -r 3").
set -e
BIN=${BIN:-build/shardlm}
TMP=${TMP:-/tmp}
THREADS=${THREADS:-"1 2"}
TYPES=${TYPES:-"Q4_0 Q8_0 F16 Q4_K_M"}
ARGS=${ARGS:-"-p 512 -n 64 -b 1,4,16,64 -r 3"}
VOCAB=../shared/golden/tokenizer/ggml-vocab-llama-spm.gguf
mk() { # type file
    "$BIN" mkmodel -o "$2" --dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 --ctx 4096 --type "$1" \
        --tied --rope-base 500000 --rope-scaling llama3 --vocab-from "$VOCAB" >&2
}
trap 'rm -f "$TMP"/shardlm-1b-*.gguf' EXIT
for t in $TYPES; do
    f="$TMP/shardlm-1b-$t.gguf"
    if [ "$t" = Q4_K_M ]; then
        mk Q4_0 "$TMP/shardlm-1b-src.gguf"
        cc -O2 -Iinclude -Isrc bench/mkkquant.c "$(dirname "$BIN")/libshardlm.a" -lpcre2-8 -lutf8proc -lm -pthread -o "$TMP/shardlm-mkkquant"
        "$TMP/shardlm-mkkquant" "$TMP/shardlm-1b-src.gguf" "$f"
        rm -f "$TMP/shardlm-1b-src.gguf" "$TMP/shardlm-mkkquant"
    else
        mk "$t" "$f"
    fi
    for th in $THREADS; do
        # shellcheck disable=SC2086
        "$BIN" bench -m "$f" -t "$th" $ARGS --json | sed "s/^{/{\"type\":\"$t\",/"
    done
    rm -f "$f"
done

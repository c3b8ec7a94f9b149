#!/bin/sh
# n-gram speculation (--spec-ngram): one stream's time for the same request on
# a server without it and one with it, in turn, ROUNDS times. Two requests:
# greedy on a prompt that repeats itself (where proposals are kept), and
# sampled at temperature 0.8 (where they mostly are not: the cost of trying).
# The outputs are the same either way (tests/e2e/test_serve.c).
#
#   MODEL=/tmp/1b-q4_0.gguf THREADS=2 SPEC=5 ROUNDS=3 sh bench/spec-ngram.sh
set -eu
BIN=${BIN:-build/shardlm}
MODEL=${MODEL:-../shared/models/stories260K.gguf}
THREADS=${THREADS:-2}
SPEC=${SPEC:-5}
ROUNDS=${ROUNDS:-3}
TOKENS=${TOKENS:-128}
P0=${P0:-18391}
P1=${P1:-18392}
"$BIN" serve -m "$MODEL" --port "$P0" -t "$THREADS" --ctx-size 1024 --kv-mem 512 >/dev/null 2>&1 &
A=$!
"$BIN" serve -m "$MODEL" --port "$P1" -t "$THREADS" --ctx-size 1024 --kv-mem 512 --spec-ngram "$SPEC" >/dev/null 2>&1 &
B=$!
trap 'kill $A $B 2>/dev/null || true' EXIT
for p in "$P0" "$P1"; do
    i=0
    until curl -sf "http://127.0.0.1:$p/ready" >/dev/null; do
        i=$((i + 1)); [ $i -gt 600 ] && { echo "spec-ngram.sh: server on $p did not start" >&2; exit 1; }; sleep 0.1
    done
done
GREEDY='{"prompt":"The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox","max_tokens":'$TOKENS',"temperature":0,"ignore_eos":true}'
SAMPLED='{"prompt":"Write the list again: apples, pears, plums, cherries, grapes, lemons, limes. Again: apples, pears, plums, cherries, grapes,","max_tokens":'$TOKENS',"temperature":0.8,"seed":3,"ignore_eos":true}'
echo "| round | request | without (s) | --spec-ngram $SPEC (s) | ratio |"
echo "|---|---|---|---|---|"
r=1
while [ $r -le "$ROUNDS" ]; do
    for kind in greedy sampled; do
        if [ $kind = greedy ]; then body=$GREEDY; else body=$SAMPLED; fi
        t0=$(curl -s "http://127.0.0.1:$P0/v1/completions" -d "$body" -o /dev/null -w '%{time_total}')
        t1=$(curl -s "http://127.0.0.1:$P1/v1/completions" -d "$body" -o /dev/null -w '%{time_total}')
        echo "| $r | $kind | $t0 | $t1 | $(echo "$t0 $t1" | awk '{printf "%.2f", $1 / $2}') |"
    done
    r=$((r + 1))
done
curl -s "http://127.0.0.1:$P1/metrics" | grep -E '^shardlm_spec_decode' || true

#!/bin/sh
# Serving benchmark: the workloads W1 (unique 128-token prompts) and W2 (115
# shared + 13 unique tokens) of ../shared/docs/REFERENCE.md, 128 tokens out
# with EOS ignored, at 1, 4, 16 and 64 concurrent streams, each client
# sending its requests back to back. Starts `shardlm serve` on a free port
# (stopped at the end), or uses a running server given as URL. Prints a
# Markdown table in the form of REFERENCE.md's llama-server table (medians
# over RUNS runs per cell). Needs jq.
#
#   MODEL=PATH         model to serve (default ../shared/models/stories260K.gguf)
#   THREADS=2          compute threads of the server
#   URL=http://H:P     benchmark this server instead of starting one
#   CLIENTS="1 4 16 64"  WORKLOADS="W1 W2"
#   PER_CLIENT=4       requests per client in a run (at least MIN_REQUESTS=8)
#   RUNS=1             runs per cell (REFERENCE.md's figures are medians of 3)
#   SERVE_ARGS=...     more flags for shardlm serve;  LOADGEN_ARGS=... more for loadgen
#   OUT=DIR            also keep every run's JSON report there
set -eu
BIN=${BIN:-build/shardlm}
MODEL=${MODEL:-../shared/models/stories260K.gguf}
THREADS=${THREADS:-2}
CLIENTS=${CLIENTS:-1 4 16 64}
WORKLOADS=${WORKLOADS:-W1 W2}
PER_CLIENT=${PER_CLIENT:-4}
MIN_REQUESTS=${MIN_REQUESTS:-8}
RUNS=${RUNS:-1}
SERVE_ARGS=${SERVE_ARGS:-}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
URL=${URL:-}
OUT=${OUT:-}

command -v jq >/dev/null 2>&1 || { echo "serve-w1w2.sh: needs jq" >&2; exit 1; }
TMP=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ -n "$OUT" ] && mkdir -p "$OUT"

if [ -z "$URL" ]; then
    # shellcheck disable=SC2086
    "$BIN" serve -m "$MODEL" --port 0 -t "$THREADS" $SERVE_ARGS >"$TMP/serve.out" 2>"$TMP/serve.err" &
    PID=$!
    i=0
    until grep -q 'http://' "$TMP/serve.out"; do
        if ! kill -0 "$PID" 2>/dev/null || [ $i -ge 600 ]; then
            echo "serve-w1w2.sh: the server did not start:" >&2
            cat "$TMP/serve.err" >&2
            exit 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    URL=$(grep -o 'http://[0-9.]*:[0-9]*' "$TMP/serve.out" | head -n 1)
    echo "server: $URL ($MODEL, $THREADS threads${SERVE_ARGS:+, $SERVE_ARGS})"
else
    echo "server: $URL"
fi
# warm-up: page the weights in, start the threads
"$BIN" loadgen --url "$URL" -n 2 --max-tokens 8 -q >/dev/null

echo "| workload | clients | requests | output tokens/s | TTFT p50 / p99 (ms) | inter-token p50 / p99 (ms) | TPOT p50 (ms) | failed |"
echo "|---|---|---|---|---|---|---|---|"
for W in $WORKLOADS; do
    for C in $CLIENTS; do
        N=$((C * PER_CLIENT))
        [ "$N" -lt "$MIN_REQUESTS" ] && N=$MIN_REQUESTS
        : >"$TMP/runs"
        r=1
        while [ $r -le "$RUNS" ]; do
            # a run with failed requests still prints its report (and exits 1): the table shows the failures
            # shellcheck disable=SC2086
            "$BIN" loadgen --url "$URL" --workload "$W" -c "$C" -n "$N" --json -q $LOADGEN_ARGS >"$TMP/run.json" || true
            if jq -e . "$TMP/run.json" >/dev/null 2>&1; then
                cat "$TMP/run.json" >>"$TMP/runs"
                [ -n "$OUT" ] && cp "$TMP/run.json" "$OUT/$W-c$C-run$r.json"
            fi
            r=$((r + 1))
        done
        if [ ! -s "$TMP/runs" ]; then
            echo "| $W | $C | $N | (no report: see the errors above) | | | | |"
            continue
        fi
        jq -rs --arg w "$W" --arg c "$C" --arg n "$N" '
            def med(f): map(f) | sort | .[(length - 1) / 2 | floor];
            def r0: round | tostring;
            def r1: . * 10 | round / 10 | tostring;
            "| \($w) | \($c) | \($n) | \(med(.output_throughput) | r0) | \(med(.ttft_ms.p50) | r0) / \(med(.ttft_ms.p99) | r0) | \(med(.itl_ms.p50) | r1) / \(med(.itl_ms.p99) | r1) | \(med(.tpot_ms.p50) | r1) | \(med(.failed)) |"
        ' "$TMP/runs"
    done
done

#!/bin/sh
# Generation speed on stories260K (256 tokens, greedy), median of 5 runs,
# with the thread count given as $1 (default 1). Compare with llama.cpp's
# ≈ 4,400 tokens/s on this machine kind (../shared/docs/REFERENCE.md).
BIN=${BIN:-build/shardlm}
T=${1:-1}
for i in 1 2 3 4 5; do
    "$BIN" run -m ../shared/models/stories260K.gguf -p "Once upon a time" -n 256 --temp 0 --ignore-eos \
        -t "$T" --timings 2>&1 >/dev/null | sed -n 's/.*generation: .*(\(.*\) tokens\/s).*/\1/p'
done | sort -n | sed -n 3p | awk '{print "stories260K decode, median of 5: " $1 " tokens/s"}'

#!/bin/sh
# Usage: (after `make`, with the 1B-shape Q4_0 model at /tmp/1b-q4_0.gguf: see docs/PERF.md) sh bench/embeddings.sh
# embeddings throughput against the same model's prompt processing, one run
BIN=build/shardlm; M=/tmp/1b-q4_0.gguf
$BIN bench -m $M -t 2 -p 128 -n 0 -b 1 -r 3 --bw-mib 0 2>&1 | grep -i "prompt\|pp" | head -3
$BIN bench -m $M -t 2 -p 512 -n 0 -b 1 -r 3 --bw-mib 0 2>&1 | grep -i "prompt\|pp" | head -3
for pool in last mean; do
  $BIN serve -m $M -t 2 --port 18440 --pooling $pool --ctx-size 1024 --kv-mem 1024 > /tmp/embserve.log 2>&1 &
  PID=$!
  sleep 3
  for rep in 1 2 3; do
    # 16 inputs of 128 distinct-per-input token ids (no prefix shared between inputs)
    python3 - "$rep" > /tmp/embbody.json <<'PY'
import json, sys, random
r = random.Random(int(sys.argv[1]) * 7919)
print(json.dumps({"input": [[1] + [r.randrange(300, 31000) for _ in range(127)] for _ in range(16)]}))
PY
    curl -s -o /dev/null -w "$pool rep $rep: %{time_total} s for 2048 tokens\n" localhost:18440/v1/embeddings -d @/tmp/embbody.json
  done
  kill $PID; wait $PID 2>/dev/null
done

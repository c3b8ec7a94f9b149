#!/bin/sh
# A draft model's cost (docs/PERF.md): one greedy 64-token request to three servers of the 1B-shape Q4_0
# model (/tmp/1b-q4_0.gguf, see PERF.md), in turn, three rounds: without a draft; with its first 2 layers as
# the draft (/tmp/1b-q4_0-L2.gguf: the same mkmodel call with --layers 2), proposing only tokens it gives
# 0.8 or more (nothing, here); and proposing 4 a step whatever their probability. Prints tokens/s and the
# MD5 of each answer (the same for all), then the servers' proposal counters.
set -u
B=build/shardlm
start() { # port args...
  port=$1; shift
  $B serve -m /tmp/1b-q4_0.gguf --port $port -t 1 --ctx-size 1024 "$@" > /tmp/db_$port.out 2>/dev/null &
  echo $! > /tmp/db_$port.pid
  for i in $(seq 1 60); do grep -q http /tmp/db_$port.out && break; sleep 1; done
}
start 18101
start 18102 -md /tmp/1b-q4_0-L2.gguf
start 18103 -md /tmp/1b-q4_0-L2.gguf --draft-p-min 0 --draft-max 4
for p in 18101 18102 18103; do curl -s localhost:$p/v1/completions -d '{"prompt":"Hi","max_tokens":4}' > /dev/null; done
for r in 1 2 3; do
  for p in 18101 18102 18103; do
    t0=$(date +%s.%N)
    curl -s localhost:$p/v1/completions -d '{"prompt":"Once upon a time there was","max_tokens":64,"temperature":0,"ignore_eos":true}' | jq -r .choices[0].text | md5sum | cut -c1-8 > /tmp/db_$p.md5
    t1=$(date +%s.%N)
    echo "round $r port $p $(echo "64 / ($t1 - $t0)" | bc -l | cut -c1-6) tok/s $(cat /tmp/db_$p.md5)"
  done
done
for p in 18102 18103; do curl -s localhost:$p/metrics | grep -E "^shardlm_spec" | tr '\n' ' '; echo; done
for p in 18101 18102 18103; do kill $(cat /tmp/db_$p.pid); done

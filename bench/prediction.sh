#!/bin/sh
# Usage: (after `make`, with the 1B-shape Q4_0 model at /tmp/1b-q4_0.gguf: see docs/PERF.md) sh bench/prediction.sh
# OpenAI's Predicted Outputs: a 128-token greedy answer decoded without a prediction and with the answer itself as
# the prediction (the bound of what a prediction gives: an edit that changes nothing), three rounds alternating
BIN=build/shardlm; M=/tmp/1b-q4_0.gguf
$BIN serve -m $M -t 2 --port 18441 --ctx-size 1024 --kv-mem 1024 > /tmp/predserve.log 2>&1 &
PID=$!
sleep 6
python3 - <<'PY'
import json, time, urllib.request
def post(body):
    req = urllib.request.Request("http://127.0.0.1:18441/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t = time.time()
    o = json.load(urllib.request.urlopen(req))
    return o, time.time() - t
base = {"prompt": "The quick brown fox jumps over the lazy dog and then", "max_tokens": 128, "temperature": 0,
        "ignore_eos": True}
text = post(base)[0]["choices"][0]["text"]
for rnd in range(3):
    a, ta = post(base)
    b, tb = post(dict(base, prediction={"type": "content", "content": text}))
    same = a["choices"][0]["text"] == text == b["choices"][0]["text"]
    print("round %d: without %.2f s (%.1f tokens/s), with %.2f s (%.1f tokens/s), %.2fx, same text %s, %s" %
          (rnd, ta, 128 / ta, tb, 128 / tb, ta / tb, same, b["usage"]["completion_tokens_details"]))
PY
kill $PID; wait $PID 2>/dev/null

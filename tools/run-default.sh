#!/bin/sh
# The embedded default: a local cluster on this machine — two engines serving
# stories260K behind a router (`shardlm cluster up`), one streamed demo request
# through it, then serving until Ctrl-C (or RUN_SECONDS).
# Uses ../shared/models/stories260K.gguf; where ../shared is absent, fetches
# that public model (MIT, karpathy's tinyllamas) once into a cache.
set -e
BIN=${1:-build/shardlm}
MODEL=../shared/models/stories260K.gguf
if [ ! -f "$MODEL" ]; then
    CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/shardlm
    MODEL=$CACHE/stories260K.gguf
    if [ ! -f "$MODEL" ]; then
        URL=${SHARDLM_MODEL_URL:-https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf}
        mkdir -p "$CACHE"
        echo "fetching $URL into $CACHE"
        curl -fL --retry 3 --max-time 120 -o "$MODEL.part" "$URL"
        mv "$MODEL.part" "$MODEL"
    fi
fi
echo "model: $MODEL"
exec "$BIN" cluster up --engines "${ENGINES:-2}" -m "$MODEL" --port "${PORT:-0}" --demo \
    --run-seconds "${RUN_SECONDS:-0}"

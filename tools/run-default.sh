#!/bin/sh
# The embedded default: generate text from stories260K on this machine.
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
PROMPT=${PROMPT:-Once upon a time}
echo "model: $MODEL"
echo "prompt: $PROMPT"
"$BIN" run -m "$MODEL" -p "$PROMPT" -n "${N:-200}" --temp "${TEMP:-0.8}" --seed "${SEED:-42}"

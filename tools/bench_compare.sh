#!/usr/bin/env bash
# tools/bench_compare.sh - decode speed of edgelm (highway and scalar kernels) and llama.cpp on the same
# GGUF, in one run on this machine, best of ROUNDS; prints tok/s and ratios. Not part of the test command.
#   EDGELM=build/native/edgelm LLAMA_BIN=../peers/llama.cpp/build/bin MODEL=../shared/models/stories260K.gguf \
#     ROUNDS=6 tools/bench_compare.sh
# llama.cpp's tools come from tools/compare_llamacpp.sh (built from node-llama-cpp's source bundle).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EDGELM=${EDGELM:-$repo/build/native/edgelm}
LLAMA_BIN=${LLAMA_BIN:-$repo/../peers/llama.cpp/build/bin}
MODEL=${MODEL:-$repo/../shared/models/stories260K.gguf}
ROUNDS=${ROUNDS:-6}
N=${N:-256}
best() { sort -g | tail -1; }
declare -A R
for k in highway scalar; do
  R[edgelm-$k]=$(for _ in $(seq "$ROUNDS"); do
    "$EDGELM" bench -m "$MODEL" -n "$N" --reps 20 --kernels "$k" 2>/dev/null | sed -n 's/.*"tok_per_s":\([0-9.]*\).*/\1/p'
  done | best)
done
if [[ -x "$LLAMA_BIN/llama-completion" ]]; then
  R[llama.cpp]=$(for _ in $(seq "$ROUNDS"); do
    "$LLAMA_BIN/llama-completion" -m "$MODEL" -p "" -n $((N - 1)) --temp 0 --top-k 1 -no-cnv -t 1 --no-warmup \
      -ctk f32 -ctv f32 -fa off 2>&1 >/dev/null | grep -a " eval time" | sed -n 's/.*, *\([0-9.]*\) tokens per second.*/\1/p'
  done | best)
fi
echo "model: $MODEL ($N decode steps, 1 thread, best of $ROUNDS; $(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
for k in edgelm-highway edgelm-scalar llama.cpp; do
  [[ -n "${R[$k]:-}" ]] || continue
  ratio=""
  [[ -n "${R[llama.cpp]:-}" ]] && ratio=$(awk -v a="${R[$k]}" -v b="${R[llama.cpp]}" 'BEGIN { printf "  (%.2fx llama.cpp)", a / b }')
  printf '  %-16s %10.1f tok/s%s\n' "$k" "${R[$k]}" "$ratio"
done

#!/usr/bin/env bash
# tools/crosscheck_llamacpp.sh [FOLDER...] - llama.cpp loads the GGUFs `edgelm quantize` writes from Hugging Face
# folders, and its greedy tokens equal edgelm's. For each folder (default: tests/data/families/{llama,llama_tied,
# qwen2,gpt2,gpt_neox,phi}, the families llama.cpp has) and each type (f32, q8_0): edgelm quantize FOLDER ->
# OUT.gguf; then 16 greedy tokens after a fixed id prompt from llama.cpp's library (tools/crosscheck/llama_greedy.cpp)
# and from `edgelm run --ids ... --temp 0 --print-ids`, compared. Needs the peers of ../shared/bench/peers.sh
# (PEERS_DIR, default /work/peers: llama.cpp's source in $PEERS_DIR/src, its libraries in $PEERS_DIR/llama.cpp/bin)
# and a built CLI (EDGELM, default build/native/edgelm). Exit status: the number of mismatches.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-/work/peers}
EDGELM=${EDGELM:-$repo/build/native/edgelm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lib=$PEERS_DIR/llama.cpp/bin
g++ -std=c++17 -O1 -I"$PEERS_DIR/src/include" -I"$PEERS_DIR/src/ggml/include" "$repo/tools/crosscheck/llama_greedy.cpp" \
  -L"$lib" -lllama -lggml -lggml-base -Wl,-rpath,"$lib" -o "$work/llama_greedy"
folders=("$@")
if [[ ${#folders[@]} -eq 0 ]]; then
  for f in llama llama_tied qwen2 gpt2 gpt_neox phi; do folders+=("$repo/tests/data/families/$f"); done
fi
prompt="1 5 9 13 2 7"
bad=0
printf '%-12s %-5s %-8s %s\n' folder type arch result
for dir in "${folders[@]}"; do
  for type in f32 q8_0; do
    out=$work/$(basename "$dir")-$type.gguf
    "$EDGELM" quantize "$dir" "$out" --type "$type" 2>/dev/null
    arch=$("$EDGELM" inspect -m "$out" | sed -n 's/^architecture: //p')
    theirs=$("$work/llama_greedy" "$out" 16 $prompt 2>/dev/null || echo "llama.cpp failed")
    ours=$("$EDGELM" run -m "$out" --ids "$prompt" --temp 0 -n 16 --print-ids 2>/dev/null || echo "edgelm failed")
    if [[ "$theirs" == "$ours" ]]; then r="same 16 greedy tokens ($ours)"; else r="DIFFERENT: llama.cpp [$theirs] edgelm [$ours]"; bad=$((bad + 1)); fi
    printf '%-12s %-5s %-8s %s\n' "$(basename "$dir")" "$type" "$arch" "$r"
  done
done
exit $bad

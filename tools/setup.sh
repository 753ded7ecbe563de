#!/usr/bin/env bash
# tools/setup.sh - the README's first command: install the dependencies (Debian 12, as root or with
# sudo), build the native preset (build/native/edgelm) and generate a story with it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CMAKE_BUILD_PARALLEL_LEVEL=${EDGELM_JOBS:-$(nproc 2>/dev/null || echo 2)}

tools/install_deps.sh
command -v ccache >/dev/null 2>&1 && export CMAKE_CXX_COMPILER_LAUNCHER=ccache
cmake --preset native
cmake --build --preset native --target edgelm_cli

shared=${EDGELM_SHARED_DIR:-$repo/../shared}/models
if [[ -f models/edgelm-student-f32.gguf ]]; then
  model=(-m models/edgelm-student-f32.gguf)
elif [[ -f "$shared/stories260K.bin" ]]; then
  model=(-m "$shared/stories260K.bin" -z "$shared/tok512.bin")
else
  echo "setup: built build/native/edgelm; no model found (models/edgelm-student-f32.gguf or $shared)" >&2
  exit 1
fi
echo "setup: build/native/edgelm run ${model[*]} -p \"Once upon a time\" -n 64"
build/native/edgelm run "${model[@]}" -p "Once upon a time" -n 64

#!/usr/bin/env bash
# tests/single_header/run.sh [BUILD_DIR] - build tests/single_header/main.cpp against ONLY
# single_include/ (no include/, no system edgelm) with -Werror -fno-exceptions, with g++ and, when
# present, clang++-14, and run it on <shared>/models (EDGELM_SHARED_DIR, default <repo>/../shared).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/build/single_header}
models=${EDGELM_SHARED_DIR:-$repo/../shared}/models
mkdir -p "$out"
flags=(-std=c++20 -O2 -Wall -Wextra -Werror -fno-exceptions)
compilers=("${CXX:-g++}")
command -v clang++-14 >/dev/null && compilers+=(clang++-14)
for cxx in "${compilers[@]}"; do
  exe=$out/single_header_$(basename "$cxx")
  echo "single_header: $cxx ${flags[*]} -I single_include"
  "$cxx" "${flags[@]}" -I "$repo/single_include" "$here/main.cpp" -o "$exe"
  "$exe" "$models"
done

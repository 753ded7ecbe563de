#!/usr/bin/env bash
# tests/consumers/run.sh [INSTALL_PREFIX] - build and run the consumer projects:
#   find_package     against an installed edgelm (default prefix build/install; installs it from a
#                    fresh configure of the source tree when the prefix holds no edgelmConfig.cmake)
#   add_subdirectory and fetch_content against this source tree
#   meson_subproject edgelm as a meson subproject (when meson is installed)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
prefix=${1:-$repo/build/install}
work=$repo/build/consumers
model=${EDGELM_SHARED_DIR:-$repo/../shared}/models/stories260K.gguf
mkdir -p "$work"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

if [[ ! -f "$prefix/share/cmake/edgelm/edgelmConfig.cmake" ]]; then
  echo "consumers: installing edgelm into $prefix"
  cmake -S "$repo" -B "$work/install-build" "${gen[@]}" -DEDGELM_BUILD_TESTS=OFF -DEDGELM_BUILD_EXAMPLES=OFF \
        -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
  cmake --install "$work/install-build" >/dev/null
fi

for kind in find_package add_subdirectory fetch_content; do
  echo "consumers: $kind"
  rm -rf "$work/$kind"
  cmake -S "$here/$kind" -B "$work/$kind" "${gen[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Debug \
        -DCMAKE_PREFIX_PATH="$prefix" -DEDGELM_DIR="$repo" >"$work/$kind.configure.log" 2>&1 \
    || { cat "$work/$kind.configure.log"; exit 1; }
  cmake --build "$work/$kind"
  "$work/$kind/consumer" "$model"
done

if command -v meson >/dev/null; then
  echo "consumers: meson_subproject"
  src=$work/meson_subproject-src
  rm -rf "$src" "$work/meson_subproject"
  mkdir -p "$src/subprojects"
  cp "$here/meson_subproject/meson.build" "$src/"
  cp "$here/consumer.cpp" "$work/consumer.cpp"   # the project refers to ../consumer.cpp
  ln -s "$repo" "$src/subprojects/edgelm"
  meson setup "$work/meson_subproject" "$src" >"$work/meson_subproject.configure.log" 2>&1 \
    || { cat "$work/meson_subproject.configure.log"; exit 1; }
  meson compile -C "$work/meson_subproject"
  "$work/meson_subproject/consumer" "$model"
fi

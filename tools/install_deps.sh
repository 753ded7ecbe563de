#!/usr/bin/env bash
# tools/install_deps.sh - install every Debian 12 package edgelm's build, tests and tools need.
# Idempotent: when every package is already installed (dpkg -s), apt is not touched at all,
# so reruns cost a fraction of a second. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  # compilers and build systems
  build-essential g++ cmake ninja-build meson ccache git
  clang-14 libclang-rt-14-dev llvm-14          # sanitizers + libFuzzer (clang++-14)
  # header-only dependencies
  libhwy-dev libxsimd-dev xtl-dev nlohmann-json3-dev doctest-dev
  # WebAssembly
  emscripten binaryen nodejs wabt              # wabt: wasm-objdump (build_web.sh's relaxed-SIMD builds)
  chromium                                     # the browser tests (tests/web) drive /usr/bin/chromium
  # python tools (tools/train uses /usr/bin/python3 with these)
  python3 python3-numpy python3-torch python3-sentencepiece
  # training corpus used by tools/train (the bible program and its text)
  bible-kjv bible-kjv-text
)
if [[ -n "${EDGELM_EXTRA_PACKAGES:-}" ]]; then
  read -r -a extra <<<"$EDGELM_EXTRA_PACKAGES"
  packages+=("${extra[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# npm (tools/train packs an npm corpus): nodesource's nodejs ships npm inside it, and Debian's npm
# package would conflict with that nodejs, so the command is checked, not the package.
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

# The browser tests' driver (tests/web/run.mjs): npm playwright-core into tests/web/node_modules, never a browser
# download (the tests drive Debian's /usr/bin/chromium). Skipped when already installed; a failure (no npm
# registry) is reported and does not fail the other dependencies.
install_web_npm() {
  local dir
  dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/web" && pwd)
  [[ -f $dir/package.json ]] || return 0
  if [[ -f $dir/node_modules/playwright-core/package.json ]]; then
    echo "install_deps: playwright-core present in tests/web"
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then echo "install_deps: no npm: tests/web needs playwright-core" >&2; return 0; fi
  echo "install_deps: npm install playwright-core into tests/web (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)"
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-package-lock --ignore-scripts) ||
    echo "install_deps: npm install in tests/web failed; the web stage will report it" >&2
}

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_deps: all ${#packages[@]} packages present"
  install_web_npm
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO=(sudo); else
    echo "install_deps: not root and no sudo; install these yourself: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_web_npm
echo "install_deps: done"

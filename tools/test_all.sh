#!/usr/bin/env bash
# tools/test_all.sh [STAGE...] - everything CI checks, in one command (the README's second command;
# .ci/run runs it with EDGELM_REQUIRE_SHARED=1).
#
# Stages (default: all, in this order):
#   deps          tools/install_deps.sh (apt only when a package is missing)
#   amalgamate    single_include/edgelm/edgelm.hpp is current (tools/amalgamate.py --check)
#   native        cmake preset native: build, ctest (doctest suite + CLI golden bars)
#   single_header tests/single_header: only single_include/, -Werror -fno-exceptions, g++ and clang++
#   consumers     install into build/install; find_package, add_subdirectory, FetchContent projects
#   sanitize      cmake preset sanitize (clang++-14, ASan+UBSan): build, ctest
#   wasm          cmake preset wasm (em++ -O2 -msimd128): build, ctest under node; preset wasm-mt (-pthread
#                 CLI): golden bars with 1 and 2 threads
#   web           tools/build_web.sh (the browser package in build/web/pkg, both wasm builds, npm pack), then
#                 tests/web/run.mjs in headless /usr/bin/chromium (playwright-core from tools/install_deps.sh)
#   meson         meson setup/compile/test in build/meson
#   fuzz          every tests/fuzz/fuzz_*.cpp with libFuzzer+ASan+UBSan, EDGELM_FUZZ_SECONDS (20) each
#   train         tools/train/smoke.sh, when present
#
# Environment
#   EDGELM_REQUIRE_SHARED=1   missing ../shared/models is a failure instead of a skip
#   EDGELM_SHARED_DIR         the shared folder (default: <repo>/../shared)
#   EDGELM_FUZZ_SECONDS       libFuzzer -max_total_time per target (default 20)
#   EDGELM_JOBS               parallel jobs (default: nproc)
#   EDGELM_CLEAN=1            remove build/ first
#   EDGELM_FAIL_FAST=1        stop at the first failing stage (default: run all, fail at the end)
# Prints a per-stage summary with timings and exits non-zero when any stage failed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

all_stages=(deps amalgamate native single_header consumers sanitize wasm web meson fuzz train)
if [[ $# -gt 0 ]]; then stages=("$@"); else stages=("${all_stages[@]}"); fi

jobs=${EDGELM_JOBS:-$(nproc 2>/dev/null || echo 2)}
fuzz_seconds=${EDGELM_FUZZ_SECONDS:-20}
export CMAKE_BUILD_PARALLEL_LEVEL=$jobs
export CTEST_PARALLEL_LEVEL=$jobs
export CTEST_OUTPUT_ON_FAILURE=1
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}   # em++ -O2 needs acorn from here
# Debian's python3 (numpy, torch) comes before a pyenv shim for the scripts that need it.
export PYTHON=${PYTHON:-python3}

# A compiler cache speeds up reruns on the same machine (CMake reads this variable as the default
# launcher; meson picks ccache up by itself). Nothing depends on it.
if command -v ccache >/dev/null 2>&1; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache
  export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
  # paths relative to the clone, so that a clone in another folder (CI) reuses earlier compilations
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$repo}
  export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
fi

if [[ "${EDGELM_CLEAN:-0}" == 1 ]]; then rm -rf build; fi
mkdir -p build

SKIP=77   # a stage returning this was skipped (nothing to do)

# ---------------------------------------------------------------------------------------------
stage_deps() { tools/install_deps.sh; }

stage_amalgamate() { python3 tools/amalgamate.py --check; }

cmake_preset() {  # configure + build + test one preset
  local preset=$1
  cmake --preset "$preset"
  cmake --build --preset "$preset"
  ctest --preset "$preset"
}

stage_native() { cmake_preset native; }

stage_single_header() { tests/single_header/run.sh "$repo/build/single_header"; }

stage_consumers() {
  rm -rf build/install
  if [[ -f build/native/CMakeCache.txt ]]; then
    cmake --install build/native --prefix "$repo/build/install"
  fi
  tests/consumers/run.sh "$repo/build/install"
}

stage_sanitize() { cmake_preset sanitize; }   # ASAN_OPTIONS/UBSAN_OPTIONS: the sanitize test preset

# The single-thread build (CLI + doctest suite under node), then the pthreads CLI (wasm-mt) through the
# golden bars with 1 and 2 threads.
stage_wasm() {
  cmake_preset wasm
  cmake --preset wasm-mt
  cmake --build --preset wasm-mt
  EDGELM_GOLDEN_THREADS="1 2" tests/cli/golden.sh /usr/bin/node --no-experimental-fetch "$repo/build/wasm-mt/edgelm.js"
}

# The browser package and its tests in headless Chromium (tests/web/run.mjs; playwright-core needs NODE_OPTIONS unset).
stage_web() {
  tools/build_web.sh
  env -u NODE_OPTIONS node tests/web/run.mjs
}

stage_meson() {
  if [[ -f build/meson/build.ninja ]]; then
    meson setup --reconfigure build/meson
  else
    rm -rf build/meson
    meson setup build/meson
  fi
  meson compile -C build/meson -j "$jobs"
  meson test -C build/meson --print-errorlogs --num-processes "$jobs"
}

# Build every fuzz target with libFuzzer + ASan + UBSan and run each over a copy of its seed corpus
# (tests/fuzz/corpus/<target>/) for EDGELM_FUZZ_SECONDS. Any crash, leak, UB report or timeout fails.
stage_fuzz() {
  shopt -s nullglob
  local sources=(tests/fuzz/fuzz_*.cpp)
  shopt -u nullglob
  if [[ ${#sources[@]} -eq 0 ]]; then echo "fuzz: no tests/fuzz/fuzz_*.cpp"; return $SKIP; fi
  local cxx=${EDGELM_FUZZ_CXX:-clang++-14}
  local out=$repo/build/fuzz
  rm -rf "$out/artifacts" "$out/corpus"
  mkdir -p "$out/artifacts" "$out/corpus" "$out/logs"
  # -fno-exceptions: the library must work without them, and an escaping throw is a finding too.
  local flags=(-std=c++20 -O1 -gline-tables-only -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
               -fno-omit-frame-pointer -fno-exceptions -Wall -Wextra
               -I include -I backends/highway/include -I tests/fuzz -I tests)
  local launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(ccache)

  # build, $jobs at a time
  local src name pids=() names=() failed=0 i
  for src in "${sources[@]}"; do
    name=$(basename "$src" .cpp)
    local extra=()
    if grep -q "backends/highway" "$src"; then extra=(-mavx2 -mfma -mf16c -mbmi -mbmi2 -mpclmul -maes); fi
    "${launcher[@]}" "$cxx" "${flags[@]}" "${extra[@]}" "$src" -o "$out/$name" >"$out/logs/$name.build.log" 2>&1 &
    pids+=($!); names+=("$name")
    if [[ ${#pids[@]} -ge $jobs ]]; then
      wait "${pids[0]}" || { echo "fuzz: build of ${names[0]} FAILED"; cat "$out/logs/${names[0]}.build.log"; failed=1; }
      pids=("${pids[@]:1}"); names=("${names[@]:1}")
    fi
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "fuzz: build of ${names[$i]} FAILED"; cat "$out/logs/${names[$i]}.build.log"; failed=1; }
  done
  [[ $failed -eq 0 ]] || return 1

  # run, $jobs at a time
  run_one() {
    local name=$1 corpus=$out/corpus/$1 seeds
    mkdir -p "$corpus"
    for seeds in "tests/fuzz/corpus/$name" "tests/fuzz/corpus/${name#fuzz_}"; do
      if [[ -d "$seeds" ]]; then cp -R "$seeds/." "$corpus/"; fi
    done
    # dictionary: tests/fuzz/<name without fuzz_>.dict, else tokenizer.dict for the tokenizer readers
    local dict=()
    if [[ -f "tests/fuzz/${name#fuzz_}.dict" ]]; then dict=(-dict="tests/fuzz/${name#fuzz_}.dict")
    elif [[ $name == *tokenizer* || $name == *llama2c* ]] && [[ -f tests/fuzz/tokenizer.dict ]]; then
      dict=(-dict=tests/fuzz/tokenizer.dict)
    fi
    "$out/$name" -max_total_time="$fuzz_seconds" -max_len=65536 -timeout=20 -rss_limit_mb=4096 \
      "${dict[@]}" -print_final_stats=1 -artifact_prefix="$out/artifacts/$name-" "$corpus" \
      >"$out/logs/$name.log" 2>&1
  }
  pids=(); names=()
  report() {  # report NAME STATUS
    local seeds execs
    seeds=$( { find "tests/fuzz/corpus/$1" "tests/fuzz/corpus/${1#fuzz_}" -type f 2>/dev/null || true; } | wc -l)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/logs/$1.log" | tail -1)
    if [[ $2 -eq 0 ]]; then
      echo "fuzz: $1 OK (${fuzz_seconds}s, $seeds seeds, ${execs:-?} executions)"
    else
      echo "fuzz: $1 FAILED (status $2); from build/fuzz/logs/$1.log:"
      # from the sanitizer's or libFuzzer's first report line to the end (else the last 40 lines)
      local first
      first=$(grep -n -m1 -E '^==[0-9]+==|runtime error:|ERROR: libFuzzer' "$out/logs/$1.log" | cut -d: -f1 || true)
      if [[ -n "$first" ]]; then tail -n "+$first" "$out/logs/$1.log" | head -n 80; else tail -n 40 "$out/logs/$1.log"; fi
      local art
      for art in "$out/artifacts/$1-"*; do
        [[ -e "$art" ]] || continue
        echo "fuzz: reproduce: build/fuzz/$1 build/fuzz/artifacts/$(basename "$art")"
        echo "fuzz: input (base64, first 4 KB): $(head -c 4096 "$art" | base64 -w0)"
      done
      failed=1
    fi
  }
  local st
  for src in "${sources[@]}"; do
    name=$(basename "$src" .cpp)
    run_one "$name" &
    pids+=($!); names+=("$name")
    if [[ ${#pids[@]} -ge $jobs ]]; then
      st=0; wait "${pids[0]}" || st=$?
      report "${names[0]}" $st
      pids=("${pids[@]:1}"); names=("${names[@]:1}")
    fi
  done
  for i in "${!pids[@]}"; do
    st=0; wait "${pids[$i]}" || st=$?
    report "${names[$i]}" $st
  done
  [[ $failed -eq 0 ]]
}

stage_train() {
  if [[ ! -f tools/train/smoke.sh ]]; then echo "train: tools/train/smoke.sh not present"; return $SKIP; fi
  bash tools/train/smoke.sh
}

# ---------------------------------------------------------------------------------------------
declare -A status seconds
n_passed=0 n_failed=0 n_skipped=0
total_start=$SECONDS
for stage in "${stages[@]}"; do
  if ! declare -F "stage_$stage" >/dev/null; then
    echo "test_all: unknown stage '$stage' (stages: ${all_stages[*]})" >&2
    exit 2
  fi
done
for stage in "${stages[@]}"; do
  echo
  echo "=================================================================== $stage"
  start=$SECONDS
  set +e
  ( set -euo pipefail; "stage_$stage" )
  rc=$?
  set -e
  seconds[$stage]=$((SECONDS - start))
  if [[ $rc -eq 0 ]]; then
    status[$stage]=passed; n_passed=$((n_passed + 1))
  elif [[ $rc -eq $SKIP ]]; then
    status[$stage]=skipped; n_skipped=$((n_skipped + 1))
  else
    status[$stage]="FAILED ($rc)"; n_failed=$((n_failed + 1))
  fi
  echo "=================================================================== $stage: ${status[$stage]} in ${seconds[$stage]}s"
  if [[ $rc -ne 0 && $rc -ne $SKIP && "${EDGELM_FAIL_FAST:-0}" == 1 ]]; then break; fi
done

echo
echo "test_all summary (total $((SECONDS - total_start))s)"
for stage in "${stages[@]}"; do
  [[ -n "${status[$stage]:-}" ]] || continue
  printf '  %-14s %-12s %5ss\n' "$stage" "${status[$stage]}" "${seconds[$stage]}"
done
echo "stages: $n_passed passed, $n_failed failed, $n_skipped skipped"
[[ $n_failed -eq 0 ]]

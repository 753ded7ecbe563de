#!/bin/sh
# tests/fuzz/run_fuzz.sh - build every libFuzzer target with clang and run each for SECONDS (default 60)
# on a scratch copy of its committed seed corpus (the committed seeds are never modified).
#   tests/fuzz/run_fuzz.sh [SECONDS] [TARGET...]
# Env: CXX (default clang++-14), OUT (default /tmp/edgelm-fuzz). Exit status is non-zero on a finding;
# the crashing input is left in $OUT/artifacts/<target>/ (reproduce: $OUT/bin/<target> <file>).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"fuzz_gguf fuzz_llama2c fuzz_llama2c_tokenizer fuzz_tokenizer_encode fuzz_dequantize fuzz_chat_template fuzz_tokenizer_json fuzz_pretokenizer fuzz_safetensors fuzz_hf_config"}
CXX=${CXX:-clang++-14}
OUT=${OUT:-/tmp/edgelm-fuzz}
mkdir -p "$OUT/bin"
status=0
for t in $targets; do
  echo "== $t: building"
  "$CXX" -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -fno-exceptions -Wall -Wextra -I "$root/include" -I "$root/tests" "$here/$t.cpp" -o "$OUT/bin/$t"
  rm -rf "$OUT/corpus/$t" "$OUT/artifacts/$t"
  mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
  cp "$here/corpus/$t/"* "$OUT/corpus/$t/"
  dict="$here/tokenizer.dict"
  [ "$t" = fuzz_gguf ] && dict="$here/gguf.dict"
  [ "$t" = fuzz_dequantize ] && dict=""
  [ "$t" = fuzz_chat_template ] && dict="$here/jinja.dict"
  [ "$t" = fuzz_safetensors ] && dict="$here/safetensors.dict"
  [ "$t" = fuzz_hf_config ] && dict="$here/hf_config.dict"
  echo "== $t: fuzzing for ${secs}s"
  if ! "$OUT/bin/$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      ${dict:+-dict="$dict"} -artifact_prefix="$OUT/artifacts/$t/" "$OUT/corpus/$t" > "$OUT/$t.log" 2>&1; then
    echo "== $t: FINDING (see $OUT/$t.log and $OUT/artifacts/$t/)"
    status=1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb' "$OUT/$t.log" || true
done
exit $status

#!/usr/bin/env bash
# tests/cli/golden.sh EDGELM_CMD... - the CLI bars, against llama2.c run.c's reference outputs.
#
#   tests/cli/golden.sh build/native/edgelm
#   tests/cli/golden.sh /usr/bin/node --no-experimental-fetch build/wasm/edgelm.js
#
# EDGELM_CMD is the command that runs the CLI (a native binary, or node + the emscripten .js);
# native and wasm must both print byte-identical text, so both are held to the same files.
# Reference data: ${EDGELM_SHARED_DIR:-<repo>/../shared}/models (stories260K, tok512, the Llama-2
# 32k tokenizer, golden/). Missing: skipped (exit 0), or a failure when EDGELM_REQUIRE_SHARED=1.
#
# Checks
#   generate  run -p PROMPT -n N --temp 0 == golden/<case>_n200.txt byte for byte, for the llama2.c
#             .bin (+ -z tok512.bin) and the GGUF, with the default, scalar and highway kernels.
#             run.c's -n 200 counts positions including the prompt: N = 201 - len(prompt_ids).
#   logits    logits --ids "1 403 407 261" within 1e-4 of golden/once_upon_a_time_logits_pos0-3.txt
#   tokenize  tokenize -z tokenizer.bin -p PROMPT == ids, for golden/llama2_32k_runc_encodings.tsv
#   errors    a missing file, garbage and truncated models: exit status 1, exactly one stderr line
#   families  logits -m tests/data/families/{llama,llama_tied,llama3_scaled,qwen2,gpt2,gpt_neox,phi,gpt_neo} (HF folders) within 1e-4 of transformers' logits,
#             and the same from the GGUF `quantize FOLDER OUT --type f32` writes
#   student   models/edgelm-student-f32.gguf (when in the repo) reproduces models/student_greedy.tsv
set -uo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 EDGELM_CMD..." >&2
  exit 2
fi
CMD=("$@")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=${EDGELM_SHARED_DIR:-$repo/../shared}
M=$shared/models
G=$M/golden
PY=${PYTHON:-python3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgelm-golden.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
failures=()

ok()   { passed=$((passed + 1)); [[ -n "${EDGELM_GOLDEN_VERBOSE:-}" ]] && echo "ok    $1"; return 0; }
bad()  { failed=$((failed + 1)); failures+=("$1"); echo "FAIL  $1${2:+: $2}"; }

# run_cli NAME ARGS... : runs the CLI; stdout -> $tmp/out, stderr -> $tmp/err, status -> $rc
run_cli() {
  "${CMD[@]}" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  rc=$?
}

show_stderr() { if [[ -s "$tmp/err" ]]; then sed -n '1,5s/^/      stderr: /p' "$tmp/err"; fi; }

# expect_same NAME EXPECTED_FILE ARGS... : stdout must equal EXPECTED_FILE byte for byte
expect_same() {
  local name=$1 expected=$2; shift 2
  run_cli "$@"
  if [[ $rc -ne 0 ]]; then
    bad "$name" "exit status $rc"; show_stderr; return
  fi
  if cmp -s "$tmp/out" "$expected"; then ok "$name"; else
    bad "$name" "stdout differs from ${expected#"$shared/"} ($(cmp "$tmp/out" "$expected" 2>&1 | head -1))"
    echo "      got:      $(head -c 160 "$tmp/out" | tr '\n' '|')"
    echo "      expected: $(head -c 160 "$expected" | tr '\n' '|')"
    show_stderr
  fi
}

# expect_line NAME EXPECTED_TEXT ARGS... : stdout must be exactly EXPECTED_TEXT plus one newline
expect_line() {
  local name=$1 expected=$2; shift 2
  printf '%s\n' "$expected" >"$tmp/expected"
  run_cli "$@"
  if [[ $rc -ne 0 ]]; then bad "$name" "exit status $rc"; show_stderr; return; fi
  if cmp -s "$tmp/out" "$tmp/expected"; then ok "$name"; else
    bad "$name" "got '$(head -c 300 "$tmp/out" | tr '\n' '|')', expected '$expected'"
    show_stderr
  fi
}

# expect_error NAME ARGS... : exit status 1 and exactly one line on stderr
expect_error() {
  local name=$1; shift
  run_cli "$@"
  local lines
  lines=$(awk 'END { print NR }' "$tmp/err")
  if [[ $rc -ne 1 ]]; then bad "$name" "exit status $rc, expected 1"; show_stderr; return; fi
  if [[ $lines -ne 1 ]]; then bad "$name" "$lines lines on stderr, expected exactly 1"; show_stderr; return; fi
  ok "$name"
  [[ -n "${EDGELM_GOLDEN_VERBOSE:-}" ]] && sed 's/^/      stderr: /' "$tmp/err"
  return 0
}

if [[ ! -d "$M" || ! -f "$M/stories260K.bin" ]]; then
  if [[ "${EDGELM_REQUIRE_SHARED:-}" == 1 ]]; then
    echo "golden: FAIL: reference models not found at $M (EDGELM_REQUIRE_SHARED=1)" >&2
    exit 1
  fi
  echo "golden: SKIP: reference models not found at $M (set EDGELM_SHARED_DIR)"
  exit 0
fi

echo "golden: ${CMD[*]}"
echo "golden: reference data $M"

# ---- generate: text must match run.c byte for byte ------------------------------------------
# case name | prompt (recovered from the prompt_pieces line of <case>_n200.ids.txt)
cases=(
  "once_upon_a_time|Once upon a time"
  "lily_and_tom|Lily and Tom went to the park"
  "the_little_dog|The little dog was sad because"
  "empty_prompt|"
)
kernel_variants=("" scalar highway)
# the xsimd backend, in builds that have it (native with edgelm::xsimd): its usage text lists it
if "${CMD[@]}" run --help 2>/dev/null | grep -q "xsimd"; then kernel_variants+=(xsimd); fi
for entry in "${cases[@]}"; do
  case_name=${entry%%|*}
  prompt=${entry#*|}
  golden_txt=$G/${case_name}_n200.txt
  ids_file=$G/${case_name}_n200.ids.txt
  if [[ ! -f "$golden_txt" || ! -f "$ids_file" ]]; then
    bad "generate/$case_name" "golden files missing"; continue
  fi
  n_prompt=$(sed -n 's/^prompt_ids: //p' "$ids_file" | wc -w)
  n=$((201 - n_prompt))
  prompt_args=()
  [[ -n "$prompt" ]] && prompt_args=(-p "$prompt")
  for kernels in "${kernel_variants[@]}"; do
    kargs=()
    [[ -n "$kernels" ]] && kargs=(--kernels "$kernels")
    tag=${kernels:-default}
    expect_same "generate/$case_name/bin/$tag" "$golden_txt" \
      run -m "$M/stories260K.bin" -z "$M/tok512.bin" "${prompt_args[@]}" -n "$n" --temp 0 "${kargs[@]}"
    expect_same "generate/$case_name/gguf/$tag" "$golden_txt" \
      run -m "$M/stories260K.gguf" "${prompt_args[@]}" -n "$n" --temp 0 "${kargs[@]}"
  done
done

# ---- logits: within 1e-4 of run.c's (plain gcc -O3) -----------------------------------------
compare_logits() {  # compare_logits NAME GOT GOLDEN
  "$PY" - "$2" "$3" <<'PYEOF'
import sys
got_path, golden_path = sys.argv[1], sys.argv[2]
golden = []
for line in open(golden_path, encoding="utf-8"):
    if line.strip():
        golden.append([float(v) for v in line.split(":", 1)[1].split()])
got = [[float(v) for v in line.split()] for line in open(got_path, encoding="utf-8") if line.strip()]
if len(got) != len(golden):
    sys.exit(f"{len(got)} lines of logits, expected {len(golden)}")
worst = (0.0, 0, 0)
for pos, (g, r) in enumerate(zip(got, golden)):
    if len(g) != len(r):
        sys.exit(f"position {pos}: {len(g)} logits, expected {len(r)}")
    for i, (a, b) in enumerate(zip(g, r)):
        d = abs(a - b)
        if not d <= worst[0]:  # also catches NaN
            worst = (d, pos, i)
            if d != d:
                break
if not worst[0] <= 1e-4:
    sys.exit(f"max |diff| {worst[0]:.3g} at position {worst[1]} token {worst[2]} (tolerance 1e-4)")
print(f"max |diff| {worst[0]:.3g}")
PYEOF
}
logits_golden=$G/once_upon_a_time_logits_pos0-3.txt
if [[ -f "$logits_golden" ]]; then
  for kernels in "${kernel_variants[@]}"; do
    kargs=()
    [[ -n "$kernels" ]] && kargs=(--kernels "$kernels")
    for fmt in bin gguf; do
      name="logits/$fmt/${kernels:-default}"
      if [[ $fmt == bin ]]; then
        run_cli logits -m "$M/stories260K.bin" -z "$M/tok512.bin" --ids "1 403 407 261" "${kargs[@]}"
      else
        run_cli logits -m "$M/stories260K.gguf" --ids "1 403 407 261" "${kargs[@]}"
      fi
      if [[ $rc -ne 0 ]]; then bad "$name" "exit status $rc"; show_stderr; continue; fi
      cp "$tmp/out" "$tmp/logits"
      if msg=$(compare_logits "$name" "$tmp/logits" "$logits_golden" 2>&1); then
        ok "$name ($msg)"
      else
        bad "$name" "$msg"
      fi
    done
  done
else
  bad "logits" "$logits_golden missing"
fi

# ---- tokenize: the Llama-2 32k tokenizer against run.c's encode() ----------------------------
tsv=$G/llama2_32k_runc_encodings.tsv
if [[ -f "$tsv" ]]; then
  i=0
  while IFS=$'\t' read -r prompt ids || [[ -n "$prompt" ]]; do
    i=$((i + 1))
    [[ -z "$ids" ]] && continue
    expect_line "tokenize/32k/$i ($prompt)" "$ids" tokenize -z "$M/tokenizer.bin" -p "$prompt"
  done <"$tsv"
  # The same prompts through tok512 must agree with the .ids.txt files as well.
  expect_line "tokenize/tok512/once_upon_a_time" "1 403 407 261 378" tokenize -z "$M/tok512.bin" -p "Once upon a time"
  expect_line "tokenize/gguf/once_upon_a_time" "1 403 407 261 378" tokenize -m "$M/stories260K.gguf" -p "Once upon a time"
else
  bad "tokenize" "$tsv missing"
fi

# ---- tokenize / detokenize with tokenizer.json (tests/data/tokenizers; ids from Hugging Face's JS port) --
T=$repo/tests/data/tokenizers
while IFS='|' read -r dir flag idx ids; do
  text=$("$PY" -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["texts"][int(sys.argv[2])])' "$T/texts.json" "$idx")
  expect_line "tokenize/json/$dir/$idx$flag" "$ids" tokenize -z "$T/$dir" -p "$text" $flag
  printf '%s' "$text" >"$tmp/text"
  skip=--no-special; [[ $dir == qwen3-mini ]] && skip=  # its text holds special tokens (and it adds no BOS)
  expect_same "detokenize/json/$dir/$idx$flag" "$tmp/text" detokenize -z "$T/$dir" -p "$ids" $skip
done < <("$PY" - "$T/reference_ids.json" <<'PYEOF'
import json, sys
ref = json.load(open(sys.argv[1]))["files"]
for d, i in (("qwen3-mini", 26), ("llama3-mini", 2), ("gpt2-style", 10), ("llama2-mini", 2), ("gemma3-mini", 11)):
    for flag, key in (("", "with"), ("--no-special", "without")):
        print(d, flag, i, " ".join(map(str, ref[d][key][i])), sep="|")
PYEOF
)
expect_line "tokenize/json/file" "$("$PY" -c 'import json,sys; print(*json.load(open(sys.argv[1]))["files"]["llama2-mini"]["with"][1])' "$T/reference_ids.json")" \
  tokenize -z "$T/llama2-mini/tokenizer.json" -p "Hello world"
printf 'Hello world' >"$tmp/hello.txt"
expect_line "tokenize/json/-f" "$("$PY" -c 'import json,sys; print(*json.load(open(sys.argv[1]))["files"]["qwen3-mini"]["with"][1])' "$T/reference_ids.json")" \
  tokenize -z "$T/qwen3-mini" -f "$tmp/hello.txt"
printf '{"model": {"type": "BPE", "vocab": {"a": 0}}}' >"$tmp/no-merges.json"
expect_error "error/tokenizer-json-no-merges" tokenize -z "$tmp/no-merges.json" -p "a"
expect_error "error/detokenize-bad-id" detokenize -z "$T/qwen3-mini" 99999999

# ---- errors: exit status 1 and one line on stderr, never a crash ------------------------------
"$PY" - "$tmp" "$M/stories260K.gguf" "$M/stories260K.bin" <<'PYEOF'
import random, sys
out, gguf, llama2c = sys.argv[1], sys.argv[2], sys.argv[3]
rng = random.Random(20251125)
garbage = bytes(rng.getrandbits(8) for _ in range(65536))
open(f"{out}/garbage.gguf", "wb").write(garbage)
open(f"{out}/garbage.bin", "wb").write(garbage)
open(f"{out}/garbage_magic.gguf", "wb").write(b"GGUF" + garbage)
open(f"{out}/truncated.gguf", "wb").write(open(gguf, "rb").read()[:100000])
open(f"{out}/truncated.bin", "wb").write(open(llama2c, "rb").read()[:100000])
open(f"{out}/empty.gguf", "wb").write(b"")
PYEOF
expect_error "error/missing-model" run -m "$tmp/does-not-exist.gguf" -p "Once upon a time" -n 8 --temp 0
expect_error "error/missing-tokenizer" run -m "$M/stories260K.bin" -z "$tmp/does-not-exist.bin" -p "Once" -n 8 --temp 0
expect_error "error/garbage.gguf" run -m "$tmp/garbage.gguf" -p "Once upon a time" -n 8 --temp 0
expect_error "error/garbage-with-magic.gguf" run -m "$tmp/garbage_magic.gguf" -p "Once upon a time" -n 8 --temp 0
expect_error "error/garbage.bin" run -m "$tmp/garbage.bin" -z "$M/tok512.bin" -p "Once upon a time" -n 8 --temp 0
expect_error "error/truncated.gguf" run -m "$tmp/truncated.gguf" -p "Once upon a time" -n 8 --temp 0
expect_error "error/truncated.bin" run -m "$tmp/truncated.bin" -z "$M/tok512.bin" -p "Once upon a time" -n 8 --temp 0
expect_error "error/empty.gguf" run -m "$tmp/empty.gguf" -p "Once upon a time" -n 8 --temp 0
expect_error "error/garbage-tokenizer" tokenize -z "$tmp/garbage.bin" -p "Once upon a time"

# ---- threads and batches: identical bytes for every thread count and batch size ----------------
# EDGELM_GOLDEN_THREADS (default "1 2 3"): the thread counts this build runs ("1" for the single-thread
# wasm build; the pthreads build build/wasm-mt is checked with "1 2").
threads_list=${EDGELM_GOLDEN_THREADS:-1 2 3}
if [[ -f "$M/stories260K.gguf" ]]; then
  run_cli logits -m "$M/stories260K.gguf" --ids "1 403 407 261 378 1 299 29" --batch 1
  cp "$tmp/out" "$tmp/logits_ref"
  run_cli logits -m "$M/stories260K.gguf" --ids "1 403 407 261 378 1 299 29" --batch 1 --precision q8_0
  cp "$tmp/out" "$tmp/logits_q8_ref"
  for t in $threads_list; do
    expect_same "threads/$t/generate" "$G/once_upon_a_time_n200.txt" \
      run -m "$M/stories260K.gguf" -p "Once upon a time" -n 196 --temp 0 -t "$t" --batch 3
    for b in 1 3 8; do
      expect_same "threads/$t/logits/batch$b" "$tmp/logits_ref" logits -m "$M/stories260K.gguf" --ids "1 403 407 261 378 1 299 29" -t "$t" --batch "$b"
    done
    expect_same "threads/$t/logits/q8_0" "$tmp/logits_q8_ref" \
      logits -m "$M/stories260K.gguf" --ids "1 403 407 261 378 1 299 29" -t "$t" --batch 5 --precision q8_0
  done
fi
expect_error "error/threads-0" run -m "$M/stories260K.gguf" -p "Once" -n 4 -t 0
expect_error "error/threads-word" run -m "$M/stories260K.gguf" -p "Once" -n 4 --threads many
expect_error "error/threads-list-run" run -m "$M/stories260K.gguf" -p "Once" -n 4 -t 1,2
expect_error "error/batch-0" run -m "$M/stories260K.gguf" -p "Once" -n 4 --batch 0
expect_error "error/kv-type" run -m "$M/stories260K.gguf" -p "Once" -n 4 --kv-type q4
expect_error "error/context-0" run -m "$M/stories260K.gguf" -p "Once" -n 4 --ctx 0

# ---- Hugging Face folders: tests/data/families (transformers 5.17 float32 logits, committed) ----------
# logits -m FOLDER --ids: within 1e-4 of the largest |logit| at every position (a folder without tokenizer
# files loads for id-level commands); run -m FOLDER without a tokenizer is one clear error.
F=$repo/tests/data/families
# The same after `quantize FOLDER OUT.gguf --type f32` (the family's GGUF layout; llama3_scaled is refused: RoPE
# scaling is not written).
check_family_logits() {  # NAME FAM : $tmp/out against the family's reference logits
  local name=$1 fam=$2 msg
  if msg=$("$PY" - "$tmp/out" "$F/$fam/logits.f32" <<'PYEOF'
import struct, sys
got = [[float(x) for x in line.split()] for line in open(sys.argv[1])]
raw = open(sys.argv[2], "rb").read()
ref = struct.unpack("<%df" % (len(raw) // 4), raw)
vocab = len(ref) // len(got) if got else 0
if not got or any(len(r) != vocab for r in got):
    print("shape: %d rows" % len(got)); sys.exit(1)
scale = max(abs(v) for v in ref)
d = max(abs(got[i // vocab][i % vocab] - ref[i]) for i in range(len(ref))) / scale
if d > 1e-4:
    print("max |edgelm - transformers| / max |logit| = %.3g" % d); sys.exit(1)
PYEOF
  ); then ok "$name"; else bad "$name" "$msg"; fi
}
for fam in llama llama_tied llama3_scaled qwen2 gpt2 gpt_neox phi gpt_neo; do
  ids=$("$PY" -c 'import json,sys; print(" ".join(map(str, json.load(open(sys.argv[1]))["ids"])))' "$F/$fam/reference.json")
  run_cli logits -m "$F/$fam" --ids "$ids"
  if [[ $rc -ne 0 ]]; then bad "families/$fam/logits" "exit status $rc"; show_stderr; else check_family_logits "families/$fam/logits" "$fam"; fi
  if [[ $fam == llama3_scaled ]]; then
    expect_error "error/quantize-rope-scaling" quantize "$F/$fam" "$tmp/$fam.gguf" --type f32
    continue
  fi
  run_cli quantize "$F/$fam" "$tmp/$fam.gguf" --type f32
  if [[ $rc -ne 0 ]]; then bad "families/$fam/quantize" "exit status $rc"; show_stderr; continue; fi
  run_cli logits -m "$tmp/$fam.gguf" --ids "$ids"
  if [[ $rc -ne 0 ]]; then bad "families/$fam/gguf-logits" "exit status $rc"; show_stderr; else check_family_logits "families/$fam/gguf-logits" "$fam"; fi
done
expect_error "error/hf-folder-without-tokenizer" run -m "$F/llama" -p "Once" -n 4
expect_error "error/lone-safetensors" logits -m "$F/llama/model.safetensors" --ids "1 2"
expect_error "error/config-json-as-model" logits -m "$F/llama/config.json" --ids "1 2"

# ---- student: the project's own trained model (models/, when present) ---------------------------
student=$repo/models/edgelm-student-f32.gguf
student_tsv=$repo/models/student_greedy.tsv
if [[ -f "$student" && -f "$student_tsv" ]]; then
  i=0
  while IFS=$'\t' read -r prompt prompt_ids gen_ids || [[ -n "$prompt" ]]; do
    i=$((i + 1))
    [[ -z "$prompt_ids" ]] && continue
    expect_line "student/$i/tokenize ($prompt)" "$prompt_ids" tokenize -m "$student" -p "$prompt"
    n=$(wc -w <<<"$gen_ids")
    expect_line "student/$i/greedy ($prompt)" "$gen_ids" \
      run -m "$student" -p "$prompt" -n "$n" --temp 0 --print-ids
  done <"$student_tsv"
elif [[ -f "$student" ]]; then
  bad "student" "$student exists but $student_tsv does not"
else
  echo "golden: note: $student not in the repo, student checks skipped"
fi

echo "golden: $passed passed, $failed failed"
if [[ $failed -ne 0 ]]; then
  printf 'golden: failed: %s\n' "${failures[@]}"
  exit 1
fi
exit 0

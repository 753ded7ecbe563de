#!/usr/bin/env bash
# tools/compare_llamacpp.sh - edgelm's quantizer, perplexity and greedy decoding side by side with
# llama.cpp's own tools, on the same GGUF files and the same text. Not part of the test suite: the first
# run builds llama.cpp (~20 minutes on 2 cores); later runs take a minute or two.
#
#   tools/compare_llamacpp.sh            # everything; prints a table (also written to $WORK/report.txt)
#   PEERS=/somewhere CTX=128 CHUNKS=200 tools/compare_llamacpp.sh
#
# Peers (never committed, never vendored): npm node-llama-cpp@3.21.1, installed with `npm i -E` into
# $PEERS (default: ../peers/compare beside the repository). Its package carries llama.cpp's source as a git
# bundle (llama/gitRelease.bundle); it is cloned to $PEERS/llama.cpp and llama-quantize, llama-perplexity,
# llama-completion and llama-tokenize are built into $PEERS/llama.cpp/build (AVX2, no AMX: executing AMX
# instructions dies with SIGILL on this machine). An existing clone or build there is reused. Greedy
# token ids on llama.cpp's side come from node-llama-cpp's prebuilt llama.cpp (same release), through a
# small node script.
#
# Models and texts ($HELDOUT overrides both texts):
#   ../shared/models/stories260K.gguf  on tests/data/stories_heldout.txt (hand-written TinyStories-style
#                                      stories, its domain; never seen by the model)
#   models/edgelm-student-f32.gguf     on models/heldout.txt (the project's held-out split), when they exist
#
# For each model:
#  (a) our F32/Q8_0/Q4_0 (`edgelm quantize`) and llama.cpp's `llama-quantize --pure` Q8_0/Q4_0, all from
#      the same F32 source; plus our Q4_0 with ggml's rounding (--q4_0-reference), whose tensor data must
#      equal llama.cpp's byte for byte, as must our Q8_0's; for stories260K also F32/Q8_0 GGUFs made from
#      the llama2.c stories260K.bin + tok512.bin (edgelm-bin-*);
#  (b) llama.cpp loads our files (llama-perplexity and llama-completion run on them);
#  (c) perplexity of every file with `edgelm perplexity` (auto precision: q8_0/q4_0 in place for uniform
#      files, f32 otherwise) and `llama-perplexity`, same --ctx/--chunks;
#  (d) greedy ids for the four golden prompts on our Q8_0 file: `edgelm run --temp 0 --print-ids` vs
#      llama.cpp (node-llama-cpp, temperature 0);
#  (e) a table with the ratios and the bars: Q8_0 PPL within 0.5% of F32; our Q4_0 PPL below llama.cpp's
#      --pure Q4_0; edgelm within 1% of llama-perplexity on the same file; identical greedy ids on Q8_0.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=${PEERS:-$repo/../peers/compare}   # not ../peers itself: shared/bench/peers.sh lays that out differently
mkdir -p "$PEERS"
PEERS=$(cd "$PEERS" && pwd)
SHARED=${EDGELM_SHARED_DIR:-$repo/../shared}
WORK=${WORK:-${TMPDIR:-/tmp}/edgelm-compare}
CTX=${CTX:-128}
CHUNKS=${CHUNKS:-200}
GEN=${GEN:-64}            # greedy tokens per golden prompt
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
LLAMA=$PEERS/llama.cpp
BIN=$LLAMA/build/bin
mkdir -p "$WORK"
log() { echo "== $*" >&2; }

# ---------------------------------------------------------------------------------------------------
# Peers: node-llama-cpp (npm), llama.cpp source from its bundle, llama.cpp's tools
# ---------------------------------------------------------------------------------------------------
if [[ ! -f $PEERS/node_modules/node-llama-cpp/package.json ]]; then
  log "installing node-llama-cpp@3.21.1 into $PEERS"
  (cd "$PEERS" && npm i -E --no-audit --no-fund node-llama-cpp@3.21.1 >&2)
fi
if [[ ! -d $LLAMA/.git ]]; then
  log "cloning llama.cpp from node-llama-cpp's gitRelease.bundle into $LLAMA"
  git clone -q "$PEERS/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$LLAMA"
fi
tools=(llama-quantize llama-perplexity llama-completion llama-tokenize)
missing=0
for t in "${tools[@]}"; do [[ -x $BIN/$t ]] || missing=1; done
if [[ $missing == 1 ]]; then
  log "building llama.cpp tools (-j$JOBS; ~20 minutes on 2 cores)"
  cmake -S "$LLAMA" -B "$LLAMA/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >&2
  cmake --build "$LLAMA/build" -j "$JOBS" --target "${tools[@]}" >&2
fi
llama_rev=$(git -C "$LLAMA" log -1 --format=%h 2>/dev/null || echo "?")
llama_tag=$(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$PEERS/node_modules/node-llama-cpp/llama/llama.cpp.info.json" 2>/dev/null || echo "?")

# ---------------------------------------------------------------------------------------------------
# edgelm CLI (EDGELM=path to use a prebuilt one)
# ---------------------------------------------------------------------------------------------------
if [[ -z ${EDGELM:-} ]]; then
  EDGELM=$WORK/edgelm
  if [[ ! -x $EDGELM || -n $(find "$repo/include" "$repo/backends" "$repo/examples/cli" -newer "$EDGELM" -name '*.?pp' 2>/dev/null | head -1) ]]; then
    log "building the edgelm CLI"
    g++ -std=c++20 -O2 -mavx2 -mfma -mf16c -mbmi -mbmi2 -mpclmul -maes -I"$repo/include" -I"$repo/backends/highway/include" \
      "$repo"/examples/cli/*.cpp -o "$EDGELM"
  fi
fi

# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------

# GGUF tensor data comparison (pure python, no numpy): prints "identical/total" and the names that differ.
cat >"$WORK/gguf_cmp.py" <<'PY'
import struct, sys
def read(path):
    b = open(path, "rb").read(); o = 0
    def u(fmt):
        nonlocal o; v = struct.unpack_from("<" + fmt, b, o); o += struct.calcsize("<" + fmt); return v[0]
    def s():
        n = u("Q"); nonlocal o; v = b[o:o + n]; o += n; return v.decode("utf-8", "replace")
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    def val(t):
        nonlocal o
        if t == 8: return s()
        if t == 9:
            et = u("I"); n = u("Q"); return [val(et) for _ in range(n)]
        o += sizes[t]; return None
    assert b[:4] == b"GGUF"; o = 4; u("I"); nt = u("Q"); nkv = u("Q"); align = 32
    for _ in range(nkv):
        k = s(); t = u("I")
        if k == "general.alignment": align = u("I")
        else: val(t)
    ts = []
    for _ in range(nt):
        name = s(); nd = u("I"); ne = [u("q") for _ in range(nd)]; ty = u("I"); off = u("Q"); ts.append((name, ne, ty, off))
    data = (o + align - 1) // align * align
    blk = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 30: (1, 2)}
    out = {}
    for name, ne, ty, off in ts:
        n = 1
        for x in ne: n *= x
        bs, sz = blk.get(ty, (1, 0)); out[name] = (ty, b[data + off: data + off + n // bs * sz])
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
same = [k for k in a if k in b and a[k] == b[k]]
diff = [k for k in a if k not in same]
print(f"{len(same)}/{len(a)}" + (" differ: " + " ".join(diff[:6]) + (" ..." if len(diff) > 6 else "") if diff else ""))
PY

# Greedy ids on llama.cpp's side: node-llama-cpp's prebuilt llama.cpp, temperature 0 (argmax), BOS + prompt.
# (Written into $PEERS: node resolves "node-llama-cpp" from the script's folder.)
cat >"$PEERS/edgelm_greedy.mjs" <<'JS'
import {getLlama} from "node-llama-cpp";
const [modelPath, n, ...prompts] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
for (const prompt of prompts) {
  // KV=F32 FA=0: the same arithmetic as edgelm (float32 KV cache, plain attention); default F16 + auto FA
  const kv = process.env.KV || "F16";
  const ctx = await model.createContext({contextSize: 512, threads: 1, experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv,
                                         ...(process.env.FA === "0" ? {flashAttention: false} : {})});
  const seq = ctx.getSequence();
  const input = [model.tokens.bos, ...(prompt === "" ? [] : model.tokenize(prompt))];
  const out = [];
  for await (const t of seq.evaluate(input, {temperature: 0})) {
    if (t === model.tokens.eos || t === model.tokens.bos) break;
    out.push(t);
    if (out.length >= Number(n)) break;
  }
  console.log(out.join(" "));
  await ctx.dispose();
}
await model.dispose();
JS

ppl_edgelm() {  # FILE -> "PPL +/- ERR" (or FAIL)
  "$EDGELM" perplexity -m "$1" -f "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" ${2:+--precision $2} 2>>"$WORK/edgelm.log" \
    | sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\)$/\1 \2/p' | grep . || echo "FAIL -"
}
ppl_llama() {  # (llama.cpp's asynchronous logger has been seen to lose its last lines: retried up to 3 times)
  local try out
  for try in 1 2 3; do
    "$BIN/llama-perplexity" -m "$1" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t "$THREADS" >"$WORK/lp.out" 2>"$WORK/lp.err" || true
    cat "$WORK/lp.out" "$WORK/lp.err" >>"$WORK/llama.log"
    out=$(cat "$WORK/lp.out" "$WORK/lp.err" | sed -n 's/.*Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 \2/p')
    if [[ -n $out ]]; then echo "$out"; return; fi
  done
  echo "FAIL -"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "FAIL" || b == "FAIL" || b == 0) print "-"; else printf "%.4f", a / b }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "FAIL" || b == "FAIL" || b == 0) print "-"; else printf "%+.3f%%", (a / b - 1) * 100 }'; }
bar() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo FAIL; fi; }

prompts=("Once upon a time" "Lily and Tom went to the park" "The little dog was sad because" "")
report=$WORK/report.txt
: >"$report"
say() { echo "$*" | tee -a "$report"; }

say "edgelm vs llama.cpp ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores)"
say "llama.cpp: node-llama-cpp 3.21.1 bundle (release $llama_tag, commit $llama_rev), tools built AVX2 -DGGML_NATIVE=OFF, -t $THREADS"
say "perplexity: --ctx $CTX --chunks $CHUNKS; greedy: $GEN tokens per prompt"

models=("stories260K:$SHARED/models/stories260K.gguf:$repo/tests/data/stories_heldout.txt")
if [[ -f $repo/models/edgelm-student-f32.gguf ]]; then
  student_text=$repo/models/heldout.txt
  [[ -f $student_text ]] || student_text=$repo/tests/data/stories_heldout.txt
  models+=("student:$repo/models/edgelm-student-f32.gguf:$student_text")
fi

for entry in "${models[@]}"; do
  IFS=: read -r name src TEXT <<<"$entry"
  TEXT=${HELDOUT:-$TEXT}
  say ""
  say "### $name ($(basename "$src"), $(stat -c %s "$src") bytes; text ${TEXT#$repo/}, $(wc -c <"$TEXT") bytes)"
  # (a) quantize
  for t in f32 q8_0 q4_0; do "$EDGELM" quantize "$src" "$WORK/$name-edgelm-$t.gguf" --type "$t" 2>>"$WORK/edgelm.log"; done
  "$EDGELM" quantize "$src" "$WORK/$name-edgelm-q4_0ref.gguf" --type q4_0 --q4_0-reference 2>>"$WORK/edgelm.log"
  files=(edgelm-f32 edgelm-q8_0 edgelm-q4_0 edgelm-q4_0ref llama-q8_0 llama-q4_0)
  if [[ $name == stories260K ]]; then  # the llama2.c path: .bin + tokenizer.bin -> GGUF with an embedded tokenizer
    for t in f32 q8_0; do
      "$EDGELM" quantize "$SHARED/models/stories260K.bin" "$WORK/$name-edgelm-bin-$t.gguf" --type "$t" -z "$SHARED/models/tok512.bin" 2>>"$WORK/edgelm.log"
      files+=("edgelm-bin-$t")
    done
  fi
  for t in Q8_0 Q4_0; do
    "$BIN/llama-quantize" --pure "$src" "$WORK/$name-llama-${t,,}.gguf" "$t" >>"$WORK/llama.log" 2>&1
  done
  say "tensor data identical to llama-quantize --pure: edgelm Q8_0 $(python3 "$WORK/gguf_cmp.py" "$WORK/$name-edgelm-q8_0.gguf" "$WORK/$name-llama-q8_0.gguf");" \
      "edgelm Q4_0 --q4_0-reference $(python3 "$WORK/gguf_cmp.py" "$WORK/$name-edgelm-q4_0ref.gguf" "$WORK/$name-llama-q4_0.gguf")"
  # (b) + (c) perplexity; llama.cpp loading our files is part of it (a FAIL there means it did not load)
  say ""
  say "$(printf '%-22s %10s %22s %22s %9s %s' file bytes 'edgelm PPL' 'llama.cpp PPL' 'ratio' '(edgelm precision)')"
  declare -A E L
  for f in "${files[@]}"; do
    path=$WORK/$name-$f.gguf
    read -r ep ee < <(ppl_edgelm "$path")
    read -r lp le < <(ppl_llama "$path")
    E[$f]=$ep
    L[$f]=$lp
    prec=$("$EDGELM" run -m "$path" -n 1 --temp 0 --stats 2>&1 >/dev/null | sed -n 's/.*"precision":"\([a-z0-9_]*\)".*/\1/p')
    say "$(printf '%-22s %10s %22s %22s %9s %s' "$f" "$(stat -c %s "$path")" "$ep +/- $ee" "$lp +/- $le" "$(ratio "$ep" "$lp")" "($prec)")"
  done
  # the F16-fallback files in f32 too (stories260K's 172-wide FFN keeps the files from being uniform)
  for f in edgelm-q8_0 llama-q8_0; do
    read -r ep ee < <(ppl_edgelm "$WORK/$name-$f.gguf" q8_0)
    say "$(printf '%-22s %10s %22s %22s %9s %s' "$f" "" "$ep +/- $ee" "" "" "(--precision q8_0)")"
  done
  say ""
  say "bars ($name):"
  say "  Q8_0 PPL within 0.5% of F32 (edgelm):     $(pct "${E[edgelm-q8_0]}" "${E[edgelm-f32]}")  $(bar "${E[edgelm-q8_0]} / ${E[edgelm-f32]} - 1 < 0.005 && ${E[edgelm-q8_0]} / ${E[edgelm-f32]} - 1 > -0.005")"
  say "  Q8_0 PPL within 0.5% of F32 (llama.cpp):  $(pct "${L[edgelm-q8_0]}" "${L[edgelm-f32]}")  $(bar "${L[edgelm-q8_0]} / ${L[edgelm-f32]} - 1 < 0.005 && ${L[edgelm-q8_0]} / ${L[edgelm-f32]} - 1 > -0.005")"
  say "  our Q4_0 < llama.cpp --pure Q4_0 (llama-perplexity): ${L[edgelm-q4_0]} vs ${L[llama-q4_0]} ($(pct "${L[edgelm-q4_0]}" "${L[llama-q4_0]}"))  $(bar "${L[edgelm-q4_0]} < ${L[llama-q4_0]}")"
  say "  our Q4_0 < llama.cpp --pure Q4_0 (edgelm perplexity): ${E[edgelm-q4_0]} vs ${E[llama-q4_0]} ($(pct "${E[edgelm-q4_0]}" "${E[llama-q4_0]}"))  $(bar "${E[edgelm-q4_0]} < ${E[llama-q4_0]}")"
  worst=0
  for f in "${!E[@]}"; do
    worst=$(awk -v a="${E[$f]}" -v b="${L[$f]}" -v w="$worst" 'BEGIN { if (a == "FAIL" || b == "FAIL") { print 1e9; exit } d = a / b - 1; if (d < 0) d = -d; print (d > w ? d : w) }')
  done
  say "  edgelm within 1% of llama-perplexity, same file: worst $(awk -v w="$worst" 'BEGIN { printf "%.3f%%", w * 100 }')  $(bar "$worst < 0.01")"
  # (d) greedy ids on our Q8_0 file. llama.cpp keeps its KV cache in F16 by default (and flash attention
  # converts to F16); edgelm keeps it in float32. The bar compares the same arithmetic (llama.cpp with an
  # F32 KV cache and flash attention off); the default configuration is reported too.
  q8=$WORK/$name-edgelm-q8_0.gguf
  mapfile -t ours < <(for p in "${prompts[@]}"; do "$EDGELM" run -m "$q8" -p "$p" -n "$GEN" --temp 0 --print-ids 2>/dev/null | head -1; done)
  for cfg in "F32 0" "F16 auto"; do
    read -r kv fa <<<"$cfg"
    mapfile -t theirs < <(KV=$kv FA=$fa node "$PEERS/edgelm_greedy.mjs" "$q8" "$GEN" "${prompts[@]}" 2>>"$WORK/llama.log")
    same=0
    for i in "${!prompts[@]}"; do
      if [[ "${ours[$i]}" == "${theirs[$i]:-x}" ]]; then same=$((same + 1)); else
        read -ra a <<<"${ours[$i]}"; read -ra b <<<"${theirs[$i]:-}"; k=0
        while [[ $k -lt ${#a[@]} && "${a[$k]}" == "${b[$k]:-}" ]]; do k=$((k + 1)); done
        say "  greedy ids differ for '${prompts[$i]}' (KV $kv, flash attention $fa) from token $k: edgelm ${a[*]:$k:6} ..., llama.cpp ${b[*]:$k:6} ..."
      fi
    done
    if [[ $kv == F32 ]]; then
      say "  same greedy ids on our Q8_0 (edgelm vs llama.cpp, F32 KV cache, no flash attention): $same/${#prompts[@]} prompts x $GEN tokens  $(bar "$same == ${#prompts[@]}")"
    else
      say "  (info) same greedy ids with llama.cpp's default F16 KV cache: $same/${#prompts[@]} prompts"
    fi
  done
  # llama-completion loads our Q8_0 and prints the text edgelm run prints (first prompt; llama-completion
  # adds a leading space and may stop a few bytes earlier, so a common prefix of 100+ bytes is required)
  lc=$("$BIN/llama-completion" -m "$q8" -p "${prompts[0]}" -n "$GEN" --temp 0 --top-k 1 -no-cnv -t "$THREADS" --no-warmup -ctk f32 -ctv f32 -fa off 2>/dev/null | tr -d '\r' || true)
  lc=${lc# }
  ec=$("$EDGELM" run -m "$q8" -p "${prompts[0]}" -n "$GEN" --temp 0 2>/dev/null || true)
  k=0
  while [[ $k -lt ${#lc} && $k -lt ${#ec} && "${lc:$k:1}" == "${ec:$k:1}" ]]; do k=$((k + 1)); done
  say "  llama-completion on our Q8_0: $k bytes in common with edgelm run (of ${#lc} and ${#ec})  $(bar "$k >= 100 && ($k == ${#lc} || $k == ${#ec})")"
  unset E L
done
say ""
say "report: $report; logs: $WORK/edgelm.log $WORK/llama.log"

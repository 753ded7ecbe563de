#!/usr/bin/env bash
# tools/bench_compare.sh - prefill and decode speed of edgelm against llama.cpp on the same GGUF files and the same
# thread counts, measured back to back in one run on this machine, printed as one markdown table with ratios.
# Absolute tok/s on the shared 2-core machines move from run to run; the ratios are what to read. Not part of the
# test command. Method: ../shared/bench/README.md.
#
#   tools/bench_compare.sh                          # the four bench GGUFs, THREADS="1 2"
#   tools/bench_compare.sh a.gguf b.gguf            # given files only
#   THREADS="1" REPS=5 tools/bench_compare.sh
#   WASM=1 tools/bench_compare.sh                   # then also tools/bench_wasm.sh (edgelm wasm vs wllama)
#   tools/bench_compare.sh --prepare                # only make sure peers + bench models exist, then exit
#
# For each file and each thread count T, in this order:
#   (a) $PEERS_DIR/llama.cpp/bin/llama-bench -m FILE -p PP -n TG -t T -r REPS -o json    (pp = prefill, tg = decode)
#   (b) $EDGELM bench -m FILE -p PP -n TG -t T -r REPS --json, which prints one JSON line per thread count:
#       {"model":..,"threads":1,"pp":128,"pp_tok_s":..,"tg":64,"tg_tok_s":..,"load_ms":..,"peak_rss_mb":..,
#        "kernels":"..","precision":".."}
# Ratios are edgelm / llama.cpp (above 1 = edgelm faster). The memory column is edgelm's peak RSS against the file
# size plus edgelm's reported "state_mb" (KV cache + activations) when its JSON has one, else plus an estimated KV
# cache of KV_CTX positions at KV_BYTES per element (2 x layers x KV_CTX x kv_heads x head_dim). Extra JSON fields
# ("kv_type", "batch", ...) are allowed; "kv_type" is shown beside kernels/precision.
# A failing tool gives "n/a" in its cells (its stderr is kept in OUT_DIR); the run goes on.
#
# Environment (defaults in brackets):
#   PEERS_DIR   peers folder [$repo/../peers]: llama.cpp tools in $PEERS_DIR/llama.cpp/bin, the wllama page root in
#               $PEERS_DIR/npm, bench GGUFs in $PEERS_DIR/npm/bench. When llama-bench is missing it is built once by
#               ../shared/bench/peers.sh (10-25 minutes on 2 cores, under nice -n 10). Nothing is vendored.
#   SHARED      shared folder [$EDGELM_SHARED_DIR or $repo/../shared] (bench/peers.sh, bench/make_gguf.py,
#               models/tokenizer.bin)
#   EDGELM      edgelm CLI [$repo/build/native/edgelm]; this script builds nothing of edgelm
#   THREADS     thread counts ["1 2"];  PP [128];  TG [64];  REPS [3]
#   KV_CTX      positions counted in the KV estimate [PP+TG];  KV_BYTES bytes per KV element [4, f32]
#   OUT_DIR     raw outputs + table.md [$PEERS_DIR/results/bench-<UTC time>]
#   NICE        niceness of the measured processes [0]; builds/model generation always run under nice -n 10
#   KEEP_F32    keep the f32 GGUFs the Q4_0 files are quantized from [1]
#   PY          python for parsing (stdlib only) [python3];  GGUF_PY python with numpy for make_gguf.py [/usr/bin/python3]
#   WASM        1: afterwards run tools/bench_wasm.sh (edgelm's wasm CLI under node vs wllama 2.3.7 in headless
#               Chromium, on its own defaults: smollm2-135m q4_0 + q8_0, WASM_THREADS) with the same PEERS_DIR [0]
#
# Default files, generated when absent (random weights in real models' shapes, Llama-2 32k vocabulary):
#   smollm2-135m-q4_0.gguf smollm2-135m-q8_0.gguf stories110m-q4_0.gguf stories110m-q8_0.gguf
#   q8_0: make_gguf.py --type q8_0;  q4_0: make_gguf.py --type f32, then llama-quantize --pure X-f32.gguf X-q4_0.gguf Q4_0
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$repo/../peers}
mkdir -p "$PEERS_DIR"
PEERS_DIR=$(cd "$PEERS_DIR" && pwd)
export PEERS_DIR
SHARED=${SHARED:-${EDGELM_SHARED_DIR:-$repo/../shared}}
SHARED=$(cd "$SHARED" && pwd)
EDGELM=${EDGELM:-$repo/build/native/edgelm}
THREADS=${THREADS:-"1 2"}
PP=${PP:-128}
TG=${TG:-64}
REPS=${REPS:-3}
KV_CTX=${KV_CTX:-$((PP + TG))}
KV_BYTES=${KV_BYTES:-4}
NICE=${NICE:-0}
KEEP_F32=${KEEP_F32:-1}
PY=${PY:-python3}
GGUF_PY=${GGUF_PY:-/usr/bin/python3}
WASM=${WASM:-0}
LLAMA_BIN=$PEERS_DIR/llama.cpp/bin
BENCH_DIR=$PEERS_DIR/npm/bench
DEFAULT_MODELS="smollm2-135m-q4_0 smollm2-135m-q8_0 stories110m-q4_0 stories110m-q8_0"

log() { echo "[bench_compare] $*" >&2; }
die() { log "error: $*"; exit 1; }

ensure_peers() {
  if [[ ! -x $LLAMA_BIN/llama-bench || ! -x $LLAMA_BIN/llama-quantize ]]; then
    log "llama.cpp tools missing in $LLAMA_BIN: building the peers with $SHARED/bench/peers.sh (10-25 minutes)"
    PEERS_DIR=$PEERS_DIR nice -n 10 bash "$SHARED/bench/peers.sh" >&2
  fi
  [[ -x $LLAMA_BIN/llama-bench ]] || die "no $LLAMA_BIN/llama-bench after peers.sh"
}

# ensure_model NAME (e.g. smollm2-135m-q4_0): writes $BENCH_DIR/NAME.gguf if absent
ensure_model() {
  local name=$1 shape=${1%-*} type=${1##*-} out=$BENCH_DIR/$1.gguf
  [[ -s $out ]] && return 0
  mkdir -p "$BENCH_DIR"
  "$GGUF_PY" -c 'import numpy' 2>/dev/null || die "$GGUF_PY has no numpy (apt-get install -y python3-numpy)"
  local mk=("$GGUF_PY" "$SHARED/bench/make_gguf.py")
  local tok=$SHARED/models/tokenizer.bin
  case $type in
    q8_0) log "generating $out"
          nice -n 10 "${mk[@]}" "$out.tmp" --shape "$shape" --type q8_0 --tokenizer "$tok" && mv "$out.tmp" "$out" ;;
    q4_0) local f32=$BENCH_DIR/$shape-f32.gguf
          if [[ ! -s $f32 ]]; then
            log "generating $f32"
            nice -n 10 "${mk[@]}" "$f32.tmp" --shape "$shape" --type f32 --tokenizer "$tok" && mv "$f32.tmp" "$f32"
          fi
          log "quantizing $f32 -> $out (llama-quantize --pure Q4_0)"
          mkdir -p "$PEERS_DIR/results"
          nice -n 10 "$LLAMA_BIN/llama-quantize" --pure "$f32" "$out.tmp" Q4_0 >"$PEERS_DIR/results/quantize-$name.log" 2>&1 \
            || die "llama-quantize failed, see $PEERS_DIR/results/quantize-$name.log"
          mv "$out.tmp" "$out"
          [[ $KEEP_F32 == 1 ]] || rm -f "$f32" ;;
    *) die "don't know how to make $name (types: q8_0, q4_0)" ;;
  esac
}

ensure_peers
if [[ ${1:-} == --prepare ]]; then
  for m in $DEFAULT_MODELS; do ensure_model "$m"; done
  log "peers in $PEERS_DIR, models in $BENCH_DIR"
  exit 0
fi

models=()
if (($#)); then
  for f in "$@"; do [[ -s $f ]] || die "no such model file: $f"; models+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")"); done
else
  for m in $DEFAULT_MODELS; do ensure_model "$m"; models+=("$BENCH_DIR/$m.gguf"); done
fi

have_edgelm=1
if [[ ! -x $EDGELM ]]; then
  have_edgelm=0
  log "warning: no edgelm CLI at $EDGELM (build it first, e.g. cmake --preset native && cmake --build build/native); its columns will read n/a"
fi

OUT_DIR=${OUT_DIR:-$PEERS_DIR/results/bench-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
rec=$OUT_DIR/records.tsv
: >"$rec"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "raw outputs in $OUT_DIR; load average before: $load_before"

for f in "${models[@]}"; do
  b=$(basename "$f" .gguf)
  for t in $THREADS; do
    lj=$OUT_DIR/$b.t$t.llama-bench.json
    ej=$OUT_DIR/$b.t$t.edgelm.json
    log "$b, $t thread(s): llama-bench"
    nice -n "$NICE" "$LLAMA_BIN/llama-bench" -m "$f" -p "$PP" -n "$TG" -t "$t" -r "$REPS" -o json \
      >"$lj" 2>"$lj.stderr" || log "llama-bench failed on $b -t $t: $(tail -n1 "$lj.stderr" | cut -c1-200)"
    if ((have_edgelm)); then
      log "$b, $t thread(s): edgelm bench"
      nice -n "$NICE" "$EDGELM" bench -m "$f" -p "$PP" -n "$TG" -t "$t" -r "$REPS" --json \
        >"$ej" 2>"$ej.stderr" || log "edgelm bench failed on $b -t $t: $(tail -n1 "$ej.stderr" | cut -c1-200)"
    else
      : >"$ej"
    fi
    printf '%s\t%s\t%s\t%s\n' "$f" "$t" "$lj" "$ej" >>"$rec"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Render the table from the raw outputs (python stdlib only; every parse failure becomes n/a).
"$PY" - "$rec" "$PP" "$TG" "$KV_CTX" "$KV_BYTES" >"$OUT_DIR/table.md" <<'PYEOF'
import json, os, struct, sys
rec, PP, TG, KV_CTX, KV_BYTES = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])

def gguf_meta(path):
    """Scalar metadata of a GGUF file (arrays are skipped)."""
    meta = {}
    with open(path, 'rb') as fh:
        rd = lambda n: fh.read(n)
        if rd(4) != b'GGUF': return meta
        ver, = struct.unpack('<I', rd(4))
        if ver < 2: return meta
        n_t, n_kv = struct.unpack('<QQ', rd(16))
        fixed = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}
        def rstr(): n, = struct.unpack('<Q', rd(8)); return rd(n).decode('utf-8', 'replace')
        def val(t):
            if t in fixed: f = '<' + fixed[t]; return struct.unpack(f, rd(struct.calcsize(f)))[0]
            if t == 8: return rstr()
            if t == 9:
                et, n = struct.unpack('<IQ', rd(12))
                if et in fixed: fh.seek(n * struct.calcsize('<' + fixed[et]), 1)
                else:
                    for _ in range(n): val(et)
                return None
            raise ValueError('gguf type %d' % t)
        for _ in range(n_kv):
            k = rstr(); t, = struct.unpack('<I', rd(4)); v = val(t)
            if v is not None: meta[k] = v
    return meta

def kv_mb(path):
    try:
        m = gguf_meta(path); a = m['general.architecture']  # KeyError/OSError -> None
        L, D, H = m[a + '.block_count'], m[a + '.embedding_length'], m[a + '.attention.head_count']
        KVH = m.get(a + '.attention.head_count_kv', H)
        hd = m.get(a + '.attention.key_length', D // H)
        return 2 * L * KV_CTX * KVH * hd * KV_BYTES / 1e6
    except Exception:
        return None

def llama(path):
    pp = tg = None
    try:
        for r in json.load(open(path)):
            if r.get('n_prompt') == PP and r.get('n_gen') == 0: pp = float(r['avg_ts'])
            if r.get('n_prompt') == 0 and r.get('n_gen') == TG: tg = float(r['avg_ts'])
    except Exception:
        pass
    return pp, tg

def edgelm(path, threads):
    """The JSON line for this thread count (the last one that parses, if none names it)."""
    best = None
    try:
        for line in open(path, errors='replace'):
            line = line.strip()
            if not line.startswith('{'): continue
            try: j = json.loads(line)
            except ValueError: continue
            if not isinstance(j, dict) or 'tg_tok_s' not in j and 'pp_tok_s' not in j: continue
            if str(j.get('threads')) == str(threads): best = j
            elif best is None or str(best.get('threads')) != str(threads): best = j
    except OSError:
        pass
    return best or {}

def num(x):
    try: return float(x)
    except (TypeError, ValueError): return None
f1 = lambda x: 'n/a' if x is None else '%.1f' % x
ratio = lambda e, l: 'n/a' if e is None or not l else '%.2fx' % (e / l)

print('| file | threads | llama.cpp pp%d | edgelm pp%d | ratio | llama.cpp tg%d | edgelm tg%d | ratio '
      '| edgelm peak RSS vs file + state (or KV(%d) est.) | edgelm kernels / precision |' % (PP, PP, TG, TG, KV_CTX))
print('|---|---:|---:|---:|---:|---:|---:|---:|---|---|')
for line in open(rec):
    f, t, lj, ej = line.rstrip('\n').split('\t')
    lpp, ltg = llama(lj)
    e = edgelm(ej, t)
    epp, etg, rss = num(e.get('pp_tok_s')), num(e.get('tg_tok_s')), num(e.get('peak_rss_mb'))
    fmb = os.path.getsize(f) / 1e6 if os.path.exists(f) else None
    state = num(e.get('state_mb'))  # edgelm's own KV + activations figure, when it reports one
    kv, what = (state, 'state') if state is not None else (kv_mb(f), 'KV est.')
    if rss is None or fmb is None: mem = 'n/a'
    else:
        ref = fmb + (kv or 0)
        mem = '%.1f MB / (%.1f + %s %s MB) = %.2fx' % (rss, fmb, f1(kv), what, rss / ref)
    kp = '%s / %s' % (e.get('kernels', 'n/a'), e.get('precision', 'n/a')) if e else 'n/a'
    if e.get('kv_type'): kp += ', kv %s' % e['kv_type']
    if e and str(e.get('threads')) != t: kp += ' (reported threads=%s)' % e.get('threads')
    print('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
        os.path.basename(f), t, f1(lpp), f1(epp), ratio(epp, lpp), f1(ltg), f1(etg), ratio(etg, ltg), mem, kp))
PYEOF

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
{
  echo
  echo "pp$PP / tg$TG tok/s, mean of $REPS reps each; ratio = edgelm / llama.cpp; $(date -u '+%F %H:%M UTC'), $cpu, $(nproc) CPUs,"
  echo "load average before $load_before, after $load_after; llama.cpp: $LLAMA_BIN; edgelm: $EDGELM; raw: $OUT_DIR"
} >>"$OUT_DIR/table.md"
cat "$OUT_DIR/table.md"

if [[ $WASM == 1 ]]; then
  echo
  OUT_DIR=$OUT_DIR/wasm PEERS_DIR=$PEERS_DIR SHARED=$SHARED "$repo/tools/bench_wasm.sh"
fi

#!/usr/bin/env bash
# tools/bench_wasm.sh - prefill and decode speed of edgelm's WebAssembly CLI (under node) against wllama 2.3.7
# (llama.cpp compiled to wasm) in headless Chromium, on the same GGUF files and thread counts, back to back in one
# run; prints one markdown table with ratios (edgelm / wllama). Not part of the test command. Method:
# ../shared/bench/README.md. Also run by `WASM=1 tools/bench_compare.sh`.
#
#   tools/bench_wasm.sh                        # smollm2-135m q4_0 + q8_0 from $PEERS_DIR/npm/bench, WASM_THREADS="1 2"
#   WASM_THREADS=1 REPS=5 tools/bench_wasm.sh some.gguf
#
# For each file and each thread count T:
#   (a) node --no-experimental-fetch $EDGELM_WASM bench -m FILE -p PP -n TG -t T -r REPS --json   (one JSON line:
#       {"model":..,"threads":..,"pp":..,"pp_tok_s":..,"tg":..,"tg_tok_s":..,"load_ms":..,"peak_rss_mb":..,..})
#   (b) wllama: ../shared/bench/wllama/serve.py serves $PEERS_DIR/npm (COOP/COEP headers, 127.0.0.1 only) and
#       $PEERS_DIR/npm/web/drive.mjs (playwright-core + /usr/bin/chromium, headless) opens web/bench.html REPS times
#       with m=/bench/FILE&t=T&pp=PP&n=TG: each page loads the model, prefills PP tokens in one decode call, then
#       decodes TG greedy steps. The wllama columns are the mean over the REPS pages.
#       drive.mjs runs with NODE_OPTIONS unset (playwright-core crashes under --no-experimental-fetch).
# The server is killed on exit (trap); a file outside $PEERS_DIR/npm is linked into it for the run and unlinked after.
#
# Environment (defaults in brackets):
#   PEERS_DIR     peers folder [$repo/../peers]; if its llama.cpp tools or the default models are missing,
#                 tools/bench_compare.sh --prepare builds/generates them (see that script)
#   SHARED        shared folder [$EDGELM_SHARED_DIR or $repo/../shared]
#   EDGELM_WASM   edgelm's node build [$repo/build/wasm/edgelm.js]; this script builds nothing of edgelm. A build
#                 without threads refuses -t 2: for T > 1 EDGELM_WASM_MT [$repo/build/wasm-mt/edgelm.js] is used when built
#   WASM_THREADS  ["1 2"];  PP [128];  TG [64];  REPS [3];  PORT [8765 if free, else any free port]
#   WLLAMA_TIMEOUT seconds for one drive.mjs call (REPS pages) [1200]
#   OUT_DIR       raw outputs + table.md [$PEERS_DIR/results/wasm-<UTC time>]
#   CHROMIUM      [/usr/bin/chromium] (must exist; drive.mjs uses that path);  PY [python3]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$repo/../peers}
mkdir -p "$PEERS_DIR"
PEERS_DIR=$(cd "$PEERS_DIR" && pwd)
export PEERS_DIR
SHARED=${SHARED:-${EDGELM_SHARED_DIR:-$repo/../shared}}
SHARED=$(cd "$SHARED" && pwd)
EDGELM_WASM=${EDGELM_WASM:-$repo/build/wasm/edgelm.js}
# the pthreads build (cmake --preset wasm-mt) for T > 1, when present
EDGELM_WASM_MT=${EDGELM_WASM_MT:-$repo/build/wasm-mt/edgelm.js}
WASM_THREADS=${WASM_THREADS:-"1 2"}
PP=${PP:-128}
TG=${TG:-64}
REPS=${REPS:-3}
WLLAMA_TIMEOUT=${WLLAMA_TIMEOUT:-1200}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PY=${PY:-python3}
NPM=$PEERS_DIR/npm
BENCH_DIR=$NPM/bench

log() { echo "[bench_wasm] $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -x $CHROMIUM ]] || die "no $CHROMIUM (apt-get install -y chromium)"
command -v node >/dev/null || die "no node"

srv_pid=""
tmp_files=()
ext_dir=$BENCH_DIR/.ext-$$   # created only when a file outside $NPM is linked in
cleanup() {
  set +e
  if [[ -n $srv_pid ]]; then kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; fi
  ((${#tmp_files[@]})) && rm -f "${tmp_files[@]}"
  rm -rf "$ext_dir"
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Peers and default models (bench_compare.sh --prepare builds/generates only what is missing).
default_models=("$BENCH_DIR/smollm2-135m-q4_0.gguf" "$BENCH_DIR/smollm2-135m-q8_0.gguf")
need_prepare=0
[[ -d $NPM/node_modules/@wllama/wllama && -d $NPM/node_modules/playwright-core ]] || need_prepare=1
if (($# == 0)); then for f in "${default_models[@]}"; do [[ -s $f ]] || need_prepare=1; done; fi
if ((need_prepare)); then
  log "peers or bench models missing: running tools/bench_compare.sh --prepare"
  PEERS_DIR=$PEERS_DIR SHARED=$SHARED "$repo/tools/bench_compare.sh" --prepare
fi
[[ -d $NPM/node_modules/@wllama/wllama ]] || die "no wllama in $NPM/node_modules (run $SHARED/bench/peers.sh)"
mkdir -p "$NPM/web"
for x in bench.html drive.mjs; do [[ -s $NPM/web/$x ]] || cp "$SHARED/bench/wllama/$x" "$NPM/web/"; done

models=()
if (($#)); then
  for f in "$@"; do [[ -s $f ]] || die "no such model file: $f"; models+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")"); done
else
  models=("${default_models[@]}")
fi

# URL path of each file under the served root $NPM (files elsewhere are symlinked into bench/.ext-PID/).
url_of() {
  local f=$1 real
  real=$(realpath "$f")
  case $real in
    "$(realpath "$NPM")"/*) echo "/${real#"$(realpath "$NPM")"/}" ;;
    *) mkdir -p "$ext_dir"
       ln -sf "$real" "$ext_dir/$(basename "$f")"
       echo "/bench/.ext-$$/$(basename "$f")" ;;
  esac
}

have_edgelm=1
if [[ ! -s $EDGELM_WASM ]]; then
  have_edgelm=0
  log "warning: no $EDGELM_WASM (build it first, e.g. the wasm preset); its columns will read n/a"
fi

OUT_DIR=${OUT_DIR:-$PEERS_DIR/results/wasm-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

# Server on 127.0.0.1 only; drive.mjs has port 8765 built in, so run a copy with our port.
if [[ -z ${PORT:-} ]]; then
  PORT=$("$PY" -c '
import socket
def free(p):
    s = socket.socket()
    try: s.bind(("127.0.0.1", p)); return True
    except OSError: return False
    finally: s.close()
if free(8765): print(8765)
else:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
fi
drive=$NPM/web/.drive-$$.mjs
sed "s#127\.0\.0\.1:8765#127.0.0.1:$PORT#g" "$NPM/web/drive.mjs" >"$drive"
tmp_files+=("$drive")
"$PY" "$SHARED/bench/wllama/serve.py" "$PORT" "$NPM" >"$OUT_DIR/serve.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do
  if "$PY" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/web/bench.html', timeout=1)" 2>/dev/null; then break; fi
  kill -0 "$srv_pid" 2>/dev/null || die "serve.py exited (port $PORT taken?), see $OUT_DIR/serve.log"
  sleep 0.1
done
log "serving $NPM on http://127.0.0.1:$PORT (pid $srv_pid); raw outputs in $OUT_DIR"

rec=$OUT_DIR/records.tsv
: >"$rec"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for f in "${models[@]}"; do
  b=$(basename "$f" .gguf)
  u=$(url_of "$f")
  for t in $WASM_THREADS; do
    ej=$OUT_DIR/$b.t$t.edgelm-wasm.json
    wj=$OUT_DIR/$b.t$t.wllama.jsonl
    if ((have_edgelm)); then
      log "$b, $t thread(s): edgelm wasm under node"
      wasm_cli=$EDGELM_WASM
      if [[ $t -gt 1 && -s $EDGELM_WASM_MT ]]; then wasm_cli=$EDGELM_WASM_MT; fi
      node --no-experimental-fetch "$wasm_cli" bench -m "$f" -p "$PP" -n "$TG" -t "$t" -r "$REPS" --json \
        >"$ej" 2>"$ej.stderr" || log "edgelm wasm bench failed on $b -t $t: $(tail -n1 "$ej.stderr" | cut -c1-200)"
    else
      : >"$ej"
    fi
    log "$b, $t thread(s): wllama in headless Chromium ($REPS pages)"
    qs=()
    for _ in $(seq "$REPS"); do qs+=("m=$u&t=$t&pp=$PP&n=$TG"); done
    (cd "$NPM/web" && timeout "$WLLAMA_TIMEOUT" env -u NODE_OPTIONS node "$drive" "${qs[@]}") \
      >"$wj" 2>"$wj.stderr" || log "wllama failed on $b t=$t (see $wj.stderr)"
    if grep -q '"error"' "$wj"; then log "wllama reported an error on $b t=$t: $(grep -m1 '"error"' "$wj" | cut -c1-200)"; fi
    printf '%s\t%s\t%s\t%s\n' "$f" "$t" "$wj" "$ej" >>"$rec"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

"$PY" - "$rec" "$PP" "$TG" >"$OUT_DIR/table.md" <<'PYEOF'
import json, os, sys
rec, PP, TG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def lines(path):
    out = []
    try:
        for l in open(path, errors='replace'):
            l = l.strip()
            if l.startswith('{'):
                try: out.append(json.loads(l))
                except ValueError: pass
    except OSError: pass
    return [j for j in out if isinstance(j, dict)]
def num(x):
    try: return float(x)
    except (TypeError, ValueError): return None
mean = lambda xs: sum(xs) / len(xs) if xs else None
f1 = lambda x: 'n/a' if x is None else '%.1f' % x
ratio = lambda e, w: 'n/a' if e is None or not w else '%.2fx' % (e / w)
print('| file | threads | wllama prefill %d | edgelm wasm pp%d | ratio | wllama decode %d | edgelm wasm tg%d | ratio '
      '| load ms wllama / edgelm | edgelm peak RSS | wllama runs (multi-thread build) | edgelm kernels / precision |'
      % (PP, PP, TG, TG))
print('|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|')
for line in open(rec):
    f, t, wj, ej = line.rstrip('\n').split('\t')
    w = [j for j in lines(wj) if 'error' not in j]
    werr = [j for j in lines(wj) if 'error' in j]
    wpp = mean([num(j.get('prefill_tok_s')) for j in w if num(j.get('prefill_tok_s')) is not None])
    wtg = mean([num(j.get('decode_tok_s')) for j in w if num(j.get('decode_tok_s')) is not None])
    wld = mean([num(j.get('load_ms')) for j in w if num(j.get('load_ms')) is not None])
    es = [j for j in lines(ej) if 'tg_tok_s' in j or 'pp_tok_s' in j]
    e = next((j for j in reversed(es) if str(j.get('threads')) == t), es[-1] if es else {})
    epp, etg = num(e.get('pp_tok_s')), num(e.get('tg_tok_s'))
    runs = '%d ok%s (%s)' % (len(w), ', %d error' % len(werr) if werr else '',
                             ','.join(sorted({str(j.get('multi')) for j in w})) or '-')
    kp = '%s / %s' % (e.get('kernels', 'n/a'), e.get('precision', 'n/a')) if e else 'n/a'
    if e and str(e.get('threads')) != t: kp += ' (reported threads=%s)' % e.get('threads')
    rss = num(e.get('peak_rss_mb'))
    print('| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s |' % (
        os.path.basename(f), t, f1(wpp), f1(epp), ratio(epp, wpp), f1(wtg), f1(etg), ratio(etg, wtg),
        '%.0f' % wld if wld is not None else 'n/a', '%.0f' % num(e['load_ms']) if num(e.get('load_ms')) is not None else 'n/a',
        'n/a' if rss is None else '%.1f MB' % rss, runs, kp))
PYEOF

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
{
  echo
  echo "wasm: tok/s, edgelm mean of $REPS reps (its own), wllama mean of $REPS pages; ratio = edgelm / wllama;"
  echo "$(date -u '+%F %H:%M UTC'), $cpu, $(nproc) CPUs, node $(node --version), $("$CHROMIUM" --version 2>/dev/null | head -1);"
  echo "load average before $load_before, after $load_after; edgelm: $EDGELM_WASM; raw: $OUT_DIR"
} >>"$OUT_DIR/table.md"
cat "$OUT_DIR/table.md"

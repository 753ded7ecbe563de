#!/usr/bin/env bash
# tools/bench_web.sh - prefill and decode speed of the edgelm browser package (build/web/pkg/edgelm.mjs: the Worker,
# edgelm-st.wasm for 1 thread, edgelm-mt.wasm for more) against wllama 2.3.7 (llama.cpp compiled to wasm), both in
# headless Chromium, on the same GGUF files and thread counts, back to back in one run; prints one markdown table with
# ratios (edgelm / wllama) and edgelm's wasm heap against file + KV cache. Not part of the test command.
# Method: ../shared/bench/README.md. Modelled on tools/bench_wasm.sh (same environment variables).
#
#   tools/bench_web.sh                       # smollm2-135m q4_0 + q8_0 from $PEERS_DIR/npm/bench, WEB_THREADS="1 2"
#   WEB_THREADS=1 REPS=5 tools/bench_web.sh some.gguf
#
# One server (../shared/bench/wllama/serve.py: COOP/COEP headers, so pages are crossOriginIsolated and the pthreads
# builds of both run; 127.0.0.1 only) serves $PEERS_DIR/npm, with build/web/pkg linked in as web/.edgelm-PID/ and
# edgelm's page written next to wllama's bench.html for the run. For each file and each thread count T:
#   (a) edgelm: REPS page loads of web/.edgelm-bench-PID.html?m=FILE&t=T&pp=PP&n=TG; each page does
#       load(FILE, {threads: T, context: 512, cache: 'none'}), finds a prompt of exactly PP tokens (BOS + PP-1 times
#       " the", checked with lm.tokenize), generates TG tokens greedily (temperature 0) and reports lm.stats
#       (promptTokPerS = PP / prefill time, genTokPerS = TG / decode time, heapBytes = the wasm memory's size) and
#       lm.info. One JSON line per page.
#   (b) wllama: $PEERS_DIR/npm/web/drive.mjs opens web/bench.html REPS times with the same query: each page loads
#       the model (n_ctx 512), prefills PP tokens in one decode call, then decodes TG greedy steps.
# Both drivers run with NODE_OPTIONS unset (playwright-core crashes under --no-experimental-fetch). The columns are
# means over the REPS pages. The server is killed and the links and pages removed on exit (trap).
#
# Heap bar (issue 8): heap <= 1.1 x (file + KV cache), KV cache = 2 (K and V) x layers x context x kvHeads x
# (dim / heads) x 4 bytes (f32), at the page's context (512, wllama's n_ctx).
#
# Environment (defaults in brackets):
#   PEERS_DIR     peers folder [$repo/../peers] (wllama 2.3.7 + playwright-core in $PEERS_DIR/npm, models in npm/bench;
#                 tools/bench_compare.sh --prepare makes what is missing)
#   SHARED        shared folder [$EDGELM_SHARED_DIR or $repo/../shared]
#   EDGELM_PKG    the built package [$repo/build/web/pkg] (this script builds nothing: run tools/build_web.sh)
#   WEB_THREADS   ["1 2"];  PP [128];  TG [64];  REPS [3];  CONTEXT [512];  PORT [8765 if free, else any free port]
#   WLLAMA_TIMEOUT / EDGELM_TIMEOUT  seconds for one driver call (REPS pages) [1200 / 600]
#   EDGELM_SIMD   the load option simd: auto (relaxed SIMD when the browser has it) | simd128 [auto]
#   OUT_DIR       raw outputs + table.md [$PEERS_DIR/results/web-<UTC time>]
#   CHROMIUM      [/usr/bin/chromium];  PY [python3]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$repo/../peers}
mkdir -p "$PEERS_DIR"
PEERS_DIR=$(cd "$PEERS_DIR" && pwd)
export PEERS_DIR
SHARED=${SHARED:-${EDGELM_SHARED_DIR:-$repo/../shared}}
SHARED=$(cd "$SHARED" && pwd)
EDGELM_PKG=${EDGELM_PKG:-$repo/build/web/pkg}
WEB_THREADS=${WEB_THREADS:-"1 2"}
PP=${PP:-128}
TG=${TG:-64}
REPS=${REPS:-3}
CONTEXT=${CONTEXT:-512}
WLLAMA_TIMEOUT=${WLLAMA_TIMEOUT:-1200}
EDGELM_TIMEOUT=${EDGELM_TIMEOUT:-600}
EDGELM_SIMD=${EDGELM_SIMD:-auto}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PY=${PY:-python3}
NPM=$PEERS_DIR/npm
BENCH_DIR=$NPM/bench

log() { echo "[bench_web] $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -x $CHROMIUM ]] || die "no $CHROMIUM (apt-get install -y chromium)"
command -v node >/dev/null || die "no node"
[[ -s $EDGELM_PKG/edgelm.mjs && -s $EDGELM_PKG/edgelm-st.wasm && -s $EDGELM_PKG/edgelm-mt.wasm ]] ||
  die "no built package in $EDGELM_PKG (run tools/build_web.sh)"

srv_pid=""
tmp_files=()
ext_dir=$BENCH_DIR/.ext-$$   # created only when a file outside $NPM is linked in
pkg_link=$NPM/web/.edgelm-$$
page=$NPM/web/.edgelm-bench-$$.html
edrive=$NPM/web/.drive-edgelm-$$.mjs
cleanup() {
  set +e
  if [[ -n $srv_pid ]]; then kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; fi
  ((${#tmp_files[@]})) && rm -f "${tmp_files[@]}"
  rm -rf "$ext_dir"
  [[ -L $pkg_link ]] && rm -f "$pkg_link"
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

url_of() {  # URL path of a file under the served root $NPM (files elsewhere are linked into bench/.ext-PID/)
  local f=$1 real
  real=$(realpath "$f")
  case $real in
    "$(realpath "$NPM")"/*) echo "/${real#"$(realpath "$NPM")"/}" ;;
    *) mkdir -p "$ext_dir"
       ln -sf "$real" "$ext_dir/$(basename "$f")"
       echo "/bench/.ext-$$/$(basename "$f")" ;;
  esac
}

OUT_DIR=${OUT_DIR:-$PEERS_DIR/results/web-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

# edgelm's package and page, next to wllama's bench.html (same origin, same headers)
ln -sfn "$(cd "$EDGELM_PKG" && pwd)" "$pkg_link"
cat >"$page" <<HTML
<!doctype html><html><body><pre id="out"></pre>
<script type="module">
// edgelm's browser package measured the way a page uses it (tools/bench_web.sh): load, a PP-token prompt, TG greedy tokens.
import { load } from './.edgelm-$$/edgelm.mjs';
const q = new URLSearchParams(location.search);
const N = +(q.get('n') || 64), T = +(q.get('t') || 1), PP = +(q.get('pp') || 128), C = +(q.get('c') || 512), M = q.get('m');
try {
  const t0 = performance.now();
  const lm = await load(M, { threads: T, context: C, cache: 'none', simd: q.get('simd') || 'auto' });
  const tl = performance.now();
  let k = PP - 1, prompt = '', ids = null;
  for (let tries = 0; tries < 20; tries++) {   // BOS + k words; adjust k until the prompt is PP tokens
    prompt = Array(k).fill('the').join(' ');
    ids = await lm.tokenize(prompt);
    if (ids.length === PP) break;
    k += PP - ids.length;
  }
  if (ids.length !== PP) throw new Error('no prompt of ' + PP + ' tokens (got ' + ids.length + ')');
  let text = '';
  for await (const piece of lm.generate(prompt, { maxTokens: N, temperature: 0 })) text += piece;
  const s = lm.stats, i = lm.info;
  const kvBytes = 2 * i.layers * i.context * i.kvHeads * (i.dim / i.heads) * 4;
  window.result = { model: M, threads: T, build: i.build, coi: self.crossOriginIsolated, precision: i.precision, kernels: i.kernels,
                    load_ms: tl - t0, prompt_tokens: s.promptTokens, prefill_tok_s: s.promptTokPerS, gen_tokens: s.genTokens,
                    decode_tok_s: s.genTokPerS, heap_bytes: s.heapBytes, file_bytes: i.fileBytes, kv_bytes: kvBytes, context: i.context,
                    info_threads: i.threads, text_chars: text.length };
  await lm.unload();
} catch (e) { window.result = { error: String(e && e.stack || e) }; }
</script></body></html>
HTML
tmp_files+=("$page")

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
sed -e "s#127\.0\.0\.1:8765#127.0.0.1:$PORT#g" -e "s#/web/bench\.html#/web/.edgelm-bench-$$.html#" "$NPM/web/drive.mjs" >"$edrive"
tmp_files+=("$drive" "$edrive")
"$PY" "$SHARED/bench/wllama/serve.py" "$PORT" "$NPM" >"$OUT_DIR/serve.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do
  if "$PY" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/web/bench.html', timeout=1)" 2>/dev/null; then break; fi
  kill -0 "$srv_pid" 2>/dev/null || die "serve.py exited (port $PORT taken?), see $OUT_DIR/serve.log"
  sleep 0.1
done
log "serving $NPM on http://127.0.0.1:$PORT (pid $srv_pid), edgelm from $EDGELM_PKG; raw outputs in $OUT_DIR"

rec=$OUT_DIR/records.tsv
: >"$rec"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for f in "${models[@]}"; do
  b=$(basename "$f" .gguf)
  u=$(url_of "$f")
  for t in $WEB_THREADS; do
    ej=$OUT_DIR/$b.t$t.edgelm-web.jsonl
    wj=$OUT_DIR/$b.t$t.wllama.jsonl
    qs=()
    eqs=()
    for _ in $(seq "$REPS"); do qs+=("m=$u&t=$t&pp=$PP&n=$TG&c=$CONTEXT"); eqs+=("m=$u&t=$t&pp=$PP&n=$TG&c=$CONTEXT&simd=$EDGELM_SIMD"); done
    log "$b, $t thread(s): edgelm in headless Chromium ($REPS pages)"
    (cd "$NPM/web" && timeout "$EDGELM_TIMEOUT" env -u NODE_OPTIONS node "$edrive" "${eqs[@]}") \
      >"$ej" 2>"$ej.stderr" || log "edgelm failed on $b t=$t (see $ej.stderr)"
    if grep -q '"error"' "$ej"; then log "edgelm reported an error on $b t=$t: $(grep -m1 '"error"' "$ej" | cut -c1-300)"; fi
    log "$b, $t thread(s): wllama in headless Chromium ($REPS pages)"
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
def mean(js, k):
    xs = [num(j.get(k)) for j in js if num(j.get(k)) is not None]
    return sum(xs) / len(xs) if xs else None
f1 = lambda x: 'n/a' if x is None else '%.1f' % x
ratio = lambda e, w: 'n/a' if e is None or not w else '%.2fx' % (e / w)
MB = 1e6
print('| file | threads | wllama prefill %d | edgelm prefill %d | ratio | wllama decode %d | edgelm decode %d | ratio '
      '| edgelm heap / (file + KV) | load ms wllama / edgelm | runs wllama / edgelm | edgelm build, kernels |' % (PP, PP, TG, TG))
print('|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|')
notes = []
for line in open(rec):
    f, t, wj, ej = line.rstrip('\n').split('\t')
    w = [j for j in lines(wj) if 'error' not in j]
    e = [j for j in lines(ej) if 'error' not in j]
    werr = len(lines(wj)) - len(w)
    eerr = len(lines(ej)) - len(e)
    wpp, wtg, epp, etg = mean(w, 'prefill_tok_s'), mean(w, 'decode_tok_s'), mean(e, 'prefill_tok_s'), mean(e, 'decode_tok_s')
    heap, fb, kv = mean(e, 'heap_bytes'), mean(e, 'file_bytes'), mean(e, 'kv_bytes')
    hs = 'n/a'
    if heap and fb and kv:
        hs = '%.1f / (%.1f + %.1f) MB = %.2fx' % (heap / MB, fb / MB, kv / MB, heap / (fb + kv))
    for j in e:
        if j.get('prompt_tokens') != PP or j.get('gen_tokens') != TG:
            notes.append('%s t=%s: edgelm page with %s prompt tokens, %s generated' % (os.path.basename(f), t, j.get('prompt_tokens'), j.get('gen_tokens')))
        if str(j.get('info_threads')) != t:
            notes.append('%s t=%s: edgelm ran %s threads (crossOriginIsolated %s)' % (os.path.basename(f), t, j.get('info_threads'), j.get('coi')))
    wld, eld = mean(w, 'load_ms'), mean(e, 'load_ms')
    runs = '%d%s (%s) / %d%s' % (len(w), ' +%d err' % werr if werr else '', ','.join(sorted({str(j.get('multi')) for j in w})) or '-',
                                 len(e), ' +%d err' % eerr if eerr else '')
    bk = ', '.join(sorted({'%s %s %s' % (j.get('build'), j.get('precision'), j.get('kernels')) for j in e})) or 'n/a'
    # (the kernels name says relaxed-simd or simd128)
    print('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |' % (
        os.path.basename(f), t, f1(wpp), f1(epp), ratio(epp, wpp), f1(wtg), f1(etg), ratio(etg, wtg), hs,
        'n/a' if wld is None else '%.0f' % wld, 'n/a' if eld is None else '%.0f' % eld, runs, bk))
for n in notes: print('\nnote: ' + n)
PYEOF

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
{
  echo
  echo "browser: tok/s, means of $REPS page loads each (headless Chromium, one server with COOP/COEP); ratio = edgelm / wllama;"
  echo "$(date -u '+%F %H:%M UTC'), $cpu, $(nproc) CPUs, node $(node --version), $("$CHROMIUM" --version 2>/dev/null | head -1);"
  sizes=$(for w in "$EDGELM_PKG"/edgelm-*.wasm; do printf '%s %d B gzipped; ' "$(basename "$w")" "$(gzip -9c "$w" | wc -c)"; done)
  echo "load average before $load_before, after $load_after; edgelm: $EDGELM_PKG ($sizes); raw: $OUT_DIR"
} >>"$OUT_DIR/table.md"
cat "$OUT_DIR/table.md"

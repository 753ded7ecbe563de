// tests/web/run.mjs - browser tests of the edgelm package (build/web/pkg, built by tools/build_web.sh) in Debian's
// headless Chromium, driven by npm playwright-core (tests/web/node_modules; tools/install_deps.sh installs it).
//
//   node tests/web/run.mjs [--only NAME,...] [--list]        (run with NODE_OPTIONS unset: TOOLCHAIN.md)
//
// Reference text: run.c's greedy token ids (../shared/models/golden/once_upon_a_time_n200.ids.txt, llama2.c, an
// independent implementation) decoded with tok512.bin by this script, cut to -n 64; and, when it is built, the
// native CLI's output (build/native/edgelm run -m stories260K.gguf -p "Once upon a time" -n 64 --temp 0), which
// must agree. Tests that need ../shared/models skip when it is missing, and fail instead when EDGELM_REQUIRE_SHARED=1.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { startServer, sharedModels } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const require = createRequire(path.join(here, 'package.json'));
const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : null;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const REQUIRE_SHARED = process.env.EDGELM_REQUIRE_SHARED === '1';
const N = 64;
const PROMPT = 'Once upon a time';

let failed = 0, passed = 0, skipped = 0;
const say = (s) => process.stdout.write(s + '\n');
function assert(c, msg) { if (!c) throw new Error('assertion failed: ' + msg); }
function eq(a, b, msg) { if (a !== b) throw new Error(`${msg}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`); }

// ---------------------------------------------------------------------------------------------------------------
// Reference text from llama2.c's golden ids + tok512.bin (run.c's decode(): leading space stripped after BOS,
// <0xHH> pieces are bytes; safe_printf drops non-printable single bytes)
function goldenText() {
  const ids = fs.readFileSync(path.join(sharedModels, 'golden/once_upon_a_time_n200.ids.txt'), 'utf8');
  const gen = /generated_ids:\s*([\d ]+)/.exec(ids)[1].trim().split(/\s+/).map(Number);
  const prompt = /prompt_ids:\s*([\d ]+)/.exec(ids)[1].trim().split(/\s+/).map(Number);
  const tb = fs.readFileSync(path.join(sharedModels, 'tok512.bin'));
  const pieces = [];
  let at = 4;
  while (at < tb.length) { const len = tb.readInt32LE(at + 4); pieces.push(tb.subarray(at + 8, at + 8 + len)); at += 8 + len; }
  eq(pieces.length, 512, 'tok512.bin vocabulary');
  const all = prompt.concat(gen.slice(0, N));
  const out = [];
  for (let i = 1; i < all.length; i++) {
    if (all[i] === 1 || all[i] === 2) break;
    let p = pieces[all[i]];
    if (all[i - 1] === 1 && p[0] === 0x20) p = p.subarray(1);
    const m = /^<0x([0-9A-F]{2})>$/.exec(p.toString('latin1'));
    if (m) p = Buffer.from([parseInt(m[1], 16)]);
    if (p.length === 1 && !(p[0] >= 0x20 && p[0] < 0x7f) && !/\s/.test(String.fromCharCode(p[0]))) continue;
    out.push(p);
  }
  const text = Buffer.concat(out).toString('utf8');
  const golden = fs.readFileSync(path.join(sharedModels, 'golden/once_upon_a_time_n200.txt'), 'utf8');
  assert(golden.startsWith(text), 'the decoded golden ids are a prefix of run.c\'s printed text');
  return { text, promptIds: prompt, genIds: gen.slice(0, N) };
}
function nativeText() {
  const cli = process.env.EDGELM_NATIVE_CLI || path.join(repo, 'build/native/edgelm');
  if (!fs.existsSync(cli)) return null;
  const out = execFileSync(cli, ['run', '-m', path.join(sharedModels, 'stories260K.gguf'), '-p', PROMPT, '-n', String(N), '--temp', '0'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('utf8');
  return { cli, text: out.endsWith('\n') ? out.slice(0, -1) : out };
}

// ---------------------------------------------------------------------------------------------------------------
const haveShared = fs.existsSync(path.join(sharedModels, 'stories260K.gguf')) && fs.existsSync(path.join(sharedModels, 'golden/once_upon_a_time_n200.ids.txt'));
if (!fs.existsSync(path.join(repo, 'build/web/pkg/edgelm.mjs'))) { say('FAIL: build/web/pkg/edgelm.mjs missing: run tools/build_web.sh'); process.exit(1); }
if (!haveShared) {
  const msg = `shared models not found at ${sharedModels}`;
  if (REQUIRE_SHARED) { say('FAIL: ' + msg + ' (EDGELM_REQUIRE_SHARED=1)'); process.exit(1); }
  say('SKIP: every browser test needs stories260K.gguf: ' + msg);
  process.exit(0);
}
const ref = goldenText();
const nat = nativeText();
if (nat) {
  eq(nat.text, ref.text, `native CLI ${nat.cli} vs llama2.c golden`);
  say(`reference: llama2.c golden ids (decoded here) == native CLI output (${nat.cli}), ${ref.text.length} chars`);
} else say('reference: llama2.c golden ids decoded with tok512.bin (no native CLI built to cross-check)');
const modelBytes = fs.readFileSync(path.join(sharedModels, 'stories260K.gguf'));
const SHA = crypto.createHash('sha256').update(modelBytes).digest('hex');

let playwright;
try { playwright = require('playwright-core'); } catch (e) {
  say('FAIL: playwright-core is not installed in tests/web/node_modules (tools/install_deps.sh installs it)');
  process.exit(1);
}
if (!fs.existsSync(CHROMIUM)) { say(`FAIL: no ${CHROMIUM} (apt-get install chromium)`); process.exit(1); }

const plain = await startServer({ isolation: false });
const iso = await startServer({ isolation: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'edgelm-chromium-'));
const browser = await playwright.chromium.launch({
  executablePath: CHROMIUM, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function page(server) {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  p.on('console', (m) => { if (process.env.VERBOSE || m.type() === 'error') say(`    [console.${m.type()}] ${m.text()}`); });
  p.on('pageerror', (e) => say(`    [pageerror] ${e.message}`));
  await p.goto(server.url + '/tests/index.html');
  await p.waitForFunction(() => window.ready === true, null, { timeout: 30000 });
  p.warnings = [];
  p.on('console', (m) => { if (m.type() === 'warning') p.warnings.push(m.text()); });
  return { ctx, p };
}
const log = async (server) => (await fetch(server.url + '/__log')).json();
const reset = (server) => fetch(server.url + '/__reset');

// In the page: load, greedy generate, unload; returns what happened.
async function greedy(p, src, opts = {}, gen = {}) {
  return await p.evaluate(async ({ src, opts, gen, PROMPT, N }) => {
    const events = [];
    const t0 = performance.now();
    let lm;
    try {
      lm = await window.edgelm.load(src, Object.assign({}, opts, { onProgress: (e) => events.push(e) }));
    } catch (e) { return { error: e.message, events }; }
    let text = '';
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const tg = performance.now();
    try {
      for await (const piece of lm.generate(PROMPT, Object.assign({ maxTokens: N, temperature: 0 }, gen))) text += piece;
    } catch (e) { clearInterval(timer); return { error: 'generate: ' + e.message, events }; }
    const genMs = performance.now() - tg;
    clearInterval(timer);
    const r = { text: PROMPT + text, info: lm.info, stats: lm.stats, events, requests: lm.requests, ticks, genMs, ms: performance.now() - t0 };
    await lm.unload();
    return r;
  }, { src, opts, gen, PROMPT, N });
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test('greedy-st', async () => {
  const { ctx, p } = await page(plain);
  const r = await greedy(p, '/models/stories260K.gguf', { cache: 'none' });
  assert(!r.error, r.error);
  eq(r.text, ref.text, 'greedy text, single-thread build, 1 thread, no COOP/COEP');
  eq(r.info.build, 'st', 'build');
  eq(r.info.threads, 1, 'threads');
  eq(r.info.simd, 'wasm-simd128', 'simd');
  eq(r.info.vocabSize, 512, 'vocab');
  eq(r.stats.genTokens, N, 'generated tokens');
  eq(r.stats.reusedTokens, 0, 'the first prompt reuses nothing (the warm-up at load is forgotten)');
  eq(r.stats.promptTokens, ref.promptIds.length, 'prompt tokens');
  const last = r.events[r.events.length - 1];
  const dl = r.events.filter((e) => e.phase === 'download');
  assert(dl.length >= 2, 'download progress events arrive');
  eq(dl[dl.length - 1].loaded, modelBytes.length, 'download progress ends at the total');
  eq(dl[dl.length - 1].total, modelBytes.length, 'progress total');
  eq(last.phase, 'load', 'the last progress event is the load phase');
  for (let i = 1; i < dl.length; i++) assert(dl[i].loaded >= dl[i - 1].loaded, 'progress is monotone');
  return `${r.info.precision} ${r.info.kernels}, decode ${r.stats.genTokPerS.toFixed(0)} tok/s, ${dl.length} progress events, heap ${(r.stats.heapBytes / 1048576).toFixed(0)} MiB`;
});

// The shipped model (models/edgelm-student-*.gguf): f32 greedy ids = models/student_greedy.tsv (PyTorch from the
// GGUF, an independent implementation); every precision's text = the native CLI's, when it is built; 1 and 2 threads.
function nativeRun(file, prompt, n) {
  const cli = process.env.EDGELM_NATIVE_CLI || path.join(repo, 'build/native/edgelm');
  if (!fs.existsSync(cli)) return null;
  const out = execFileSync(cli, ['run', '-m', file, '-p', prompt, '-n', String(n), '--temp', '0'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('utf8');
  return out.endsWith('\n') ? out.slice(0, -1) : out;
}
test('shipped-model', async () => {
  const tsv = path.join(repo, 'models/student_greedy.tsv');
  if (!fs.existsSync(tsv)) return 'SKIP: models/student_greedy.tsv not in this checkout';
  const cases = fs.readFileSync(tsv, 'utf8').split('\n').filter((l) => l.trim()).map((l) => { const [prompt, pids, gids] = l.split('\t'); return { prompt, gen: gids.trim().split(/\s+/).map(Number) }; });
  const notes = [];
  for (const [server, threads] of [[plain, 1], [iso, 2]]) {
    const { p } = await page(server);
    for (const prec of ['f32', 'q8_0', 'q4_0']) {
      const file = `models/edgelm-student-${prec}.gguf`;
      if (!fs.existsSync(path.join(repo, file))) continue;
      const r = await p.evaluate(async ({ url, cases, threads }) => {
        const lm = await window.edgelm.load(url, { cache: 'none', threads });
        const out = [];
        for (const c of cases) {
          const text = await lm.complete(c.prompt, { maxTokens: c.gen.length, temperature: 0 });
          out.push({ text: c.prompt + text, ids: Array.from(lm.lastTokens) });
        }
        const info = lm.info;
        await lm.unload();
        return { out, info };
      }, { url: '/repo-models/' + path.basename(file), cases, threads });
      eq(r.info.threads, threads, 'threads');
      eq(r.info.precision, prec, 'precision chosen from the file');
      for (let i = 0; i < cases.length; i++) {
        if (prec === 'f32') eq(JSON.stringify(r.out[i].ids), JSON.stringify(cases[i].gen), `${file} greedy ids vs student_greedy.tsv (${cases[i].prompt})`);
        const nat = nativeRun(path.join(repo, file), cases[i].prompt, cases[i].gen.length);
        if (nat !== null) eq(r.out[i].text, nat, `${file} (${threads} threads) vs the native CLI (${cases[i].prompt})`);
        else if (i === 0) notes.push(`${prec}: no native CLI to compare the text with`);
      }
    }
  }
  return notes.length ? notes.join('; ') : 'f32 ids = student_greedy.tsv; f32/q8_0/q4_0 text = native CLI, 1 and 2 threads';
});

// The relaxed-SIMD builds (Chromium 156 has relaxed SIMD): picked by default, the SIMD128 ones with simd: 'simd128';
// greedy text of q4_0 and q8_0 (whose products take different instructions in the two: the relaxed i16 dot in q4_0
// prefill, i32x4 dot_add in q4_0 decode and, where the engine's is exact, in q8_0) = the native CLI's in both, 1 and
// 2 threads. The prompt is
// longer than one prefill super-tile (32 tokens), so the batched kernels and their tails run.
test('relaxed-simd', async () => {
  const precs = ['q4_0', 'q8_0'].filter((q) => fs.existsSync(path.join(repo, `models/edgelm-student-${q}.gguf`)));
  if (!precs.length) return 'SKIP: models/edgelm-student-{q4_0,q8_0}.gguf not in this checkout';
  const prompt = 'The king said to his son that the old road through the forest was closed, so the boy took the river path, ' +
    'and when he came to the bridge he saw a small grey bird sitting on the rail', n = 40;
  const notes = [];
  for (const prec of precs) {
    const file = path.join(repo, `models/edgelm-student-${prec}.gguf`);
    const nat = nativeRun(file, prompt, n);
    if (nat === null) notes.push(`${prec}: no native CLI`);
    for (const [server, threads] of [[plain, 1], [iso, 2]]) {
      const { p } = await page(server);
      const r = await p.evaluate(async ({ url, prompt, n, threads }) => {
        const out = [];
        for (const simd of ['auto', 'simd128']) {
          const lm = await window.edgelm.load(url, { cache: 'none', threads, simd });
          out.push({ text: prompt + await lm.complete(prompt, { maxTokens: n, temperature: 0 }), info: lm.info, stats: lm.stats });
          await lm.unload();
        }
        let bad = '';
        try { await window.edgelm.load(url, { cache: 'none', simd: 'avx' }); } catch (e) { bad = e.message; }
        return { out, bad };
      }, { url: `/repo-models/edgelm-student-${prec}.gguf`, prompt, n, threads });
      const [a, b] = r.out;
      eq(a.info.relaxedSimd, true, `threads ${threads}: the relaxed build by default`);
      eq(a.info.kernels, 'highway/relaxed-simd', 'its kernels');
      eq(b.info.relaxedSimd, false, "simd: 'simd128': the plain build");
      eq(b.info.kernels, 'highway/simd128', 'its kernels');
      eq(a.info.build, threads > 1 ? 'mt' : 'st', 'build');
      assert(a.stats.promptTokens > 32, `the prompt spans more than one super-tile (${a.stats.promptTokens} tokens)`);
      eq(a.text, b.text, `${prec}, threads ${threads}: relaxed and SIMD128 greedy text`);
      if (nat !== null) eq(a.text, nat, `${prec}, threads ${threads}: relaxed greedy text vs the native CLI`);
      assert(/simd must be/.test(r.bad), 'a bad simd option rejects: ' + r.bad);
    }
  }
  return notes.length ? notes.join('; ') : `${precs.join(' and ')} greedy text (${n} tokens after a long prompt): relaxed = SIMD128 = native CLI, 1 and 2 threads`;
});

// tests/web/kernels (built by tools/build_web.sh with the relaxed builds' flags): every wasm matrix product of q8_0
// and q4_0 weights, bit for bit against kernels::scalar (the reference the native backends are checked against) on
// random blocks over all byte values and shapes around the tile and chunk edges, in this browser's engine. Reports
// which relaxed dot_add lowering the engine has (1: b unsigned and exact, e.g. V8 with AVX-VNNI; 2: b signed, Arm;
// 0: neither, e.g. pmaddubsw's saturating pairs: the q8_0 prefill then keeps the SIMD128 kernel).
test('relaxed-kernels', async () => {
  if (!fs.existsSync(path.join(repo, 'build/web/kernels/kernels.js'))) throw new Error('build/web/kernels/kernels.js missing (tools/build_web.sh builds it)');
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  p.on('pageerror', (e) => say(`    [pageerror] ${e.message}`));
  await p.goto(`${plain.url}/tests/kernels.html`);
  await p.waitForFunction(() => window.kernels, null, { timeout: 120000 });
  const k = await p.evaluate(() => window.kernels);
  await ctx.close();
  eq(k.isa, 'relaxed-simd', 'the kernels test is the relaxed build');
  assert(k.cases >= 600, 'cases run: ' + k.cases);
  eq(k.failed, 0, `products that differ from the scalar reference (first: ${k.first})`);
  return `${k.cases} products bit-identical to kernels::scalar; dot_add lowering ${['inexact (SIMD128 q8_0 prefill kept)', 'unsigned b, exact', 'signed b, exact'][k.dotAddKind] ?? k.dotAddKind}`;
});

// Precision auto = the native CLI's rule (any_model.hpp choose_precision): a file quantized in more than one type runs as
// mixed (each matrix in its file type, in place; before: converted to f32, ~7x the memory for llama-quantize's
// Q4_K_M). The file: the native CLI's Q4_0 of stories260K, whose ffn_down rows (172) fall back to F16; greedy text =
// the native CLI's (auto = mixed there too); 'f32' still converts, 'mixed' runs a uniform file, and 'q4_0' of a
// file that is not all Q4_0 rejects (the browser builds convert at load only to f32).
test('mixed-file', async () => {
  const cli = process.env.EDGELM_NATIVE_CLI || path.join(repo, 'build/native/edgelm');
  if (!fs.existsSync(cli)) return 'SKIP: no native CLI to make the Q4_0 + F16 file with (edgelm quantize)';
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgelm-mixed-'));
  try {
    const file = path.join(tmp, 'stories260K-q4_0-f16.gguf');
    execFileSync(cli, ['quantize', path.join(sharedModels, 'stories260K.gguf'), file, '--type', 'q4_0'], { stdio: ['ignore', 'ignore', 'ignore'] });
    const nat = nativeRun(file, PROMPT, N);
    const natF32 = execFileSync(cli, ['run', '-m', file, '-p', PROMPT, '-n', String(N), '--temp', '0', '--precision', 'f32'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('utf8').replace(/\n$/, '');
    const { p } = await page(plain);
    const r = await p.evaluate(async ({ b64, PROMPT, N }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const out = {};
      for (const precision of ['auto', 'mixed', 'f32', 'q4_0']) {
        try {
          const lm = await window.edgelm.load(bytes.slice(), { cache: 'none', precision });
          out[precision] = { text: PROMPT + await lm.complete(PROMPT, { maxTokens: N, temperature: 0 }), info: lm.info, stats: lm.stats };
          await lm.unload();
        } catch (e) { out[precision] = { error: e.message }; }
      }
      const lm = await window.edgelm.load('/repo-models/edgelm-student-q8_0.gguf', { cache: 'none', precision: 'mixed' });
      out.uniform = { info: lm.info, text: await lm.complete(PROMPT, { maxTokens: 16, temperature: 0 }) };
      await lm.unload();
      const lm2 = await window.edgelm.load('/repo-models/edgelm-student-q8_0.gguf', { cache: 'none' });
      out.uniformAuto = { info: lm2.info, text: await lm2.complete(PROMPT, { maxTokens: 16, temperature: 0 }) };
      await lm2.unload();
      return out;
    }, { b64: fs.readFileSync(file).toString('base64'), PROMPT, N });
    for (const k of ['auto', 'mixed', 'f32']) assert(!r[k].error, `precision ${k}: ${r[k].error}`);
    eq(r.auto.info.precision, 'mixed', 'auto on a Q4_0 + F16 file');
    eq(r.mixed.info.precision, 'mixed', "precision: 'mixed'");
    eq(r.f32.info.precision, 'f32', "precision: 'f32'");
    eq(r.auto.text, r.mixed.text, 'auto = mixed');
    if (nat !== null) eq(r.auto.text, nat, 'mixed greedy text vs the native CLI (auto = mixed)');
    eq(r.f32.text, natF32, 'f32 greedy text vs the native CLI --precision f32');
    assert(/precision q4_0 needs a file/.test(r.q4_0.error || ''), "precision 'q4_0' of a file that is not all Q4_0 rejects: " + JSON.stringify(r.q4_0));
    eq(r.uniform.info.precision, 'mixed', "precision: 'mixed' of a uniform Q8_0 file");
    eq(r.uniformAuto.info.precision, 'q8_0', 'auto of a uniform Q8_0 file');
    eq(r.uniform.text, r.uniformAuto.text, 'uniform Q8_0: mixed = q8_0 greedy text');
    return `auto = mixed = native CLI; f32 = native --precision f32; heap mixed ${(r.auto.stats.heapBytes / 1048576).toFixed(0)} MiB, f32 ${(r.f32.stats.heapBytes / 1048576).toFixed(0)} MiB`;
  } finally { fs.rmSync(tmp, { recursive: true, force: true }); }
});

test('tokenize', async () => {
  const { p } = await page(plain);
  const r = await p.evaluate(async ({ ids }) => {
    const lm = await window.edgelm.load('/models/stories260K.gguf', { cache: 'none' });
    const t = Array.from(await lm.tokenize('Once upon a time'));
    const d = await lm.detokenize(ids);
    let bad = '';
    try { await lm.detokenize([99999]); } catch (e) { bad = e.message; }
    await lm.unload();
    return { t, d, bad };
  }, { ids: ref.genIds });
  eq(JSON.stringify(r.t), JSON.stringify(ref.promptIds), 'tokenize = run.c encode() ids');
  eq(PROMPT + r.d, ref.text, 'detokenize(golden ids)');
  assert(/outside the vocabulary/.test(r.bad), 'a bad id rejects: ' + r.bad);
});

test('cache-hit', async () => {
  const { p } = await page(plain);
  await reset(plain);
  const url = '/models/stories260K.gguf?t=cache';
  const a = await greedy(p, url, { sha256: SHA });
  assert(!a.error, a.error);
  eq(a.info.fromCache, false, 'first load from the network');
  const files = await p.evaluate(() => window.idbFiles());
  const f = files.find((x) => x.key.includes('t=cache'));
  assert(f && f.complete && f.sha256 === SHA, 'a complete, hashed cache entry: ' + JSON.stringify(files));
  const n0 = (await log(plain)).filter((x) => x.path.includes('t=cache')).length;
  const b = await greedy(p, url, { sha256: SHA });
  assert(!b.error, b.error);
  eq(b.info.fromCache, true, 'second load from the cache');
  eq((await log(plain)).filter((x) => x.path.includes('t=cache')).length, n0, 'no network request on the second load');
  eq(b.requests.length, 0, 'the loader made no request');
  eq(b.text, ref.text, 'greedy text from the cached model');
  assert(b.events.some((e) => e.phase === 'cache'), 'cache progress events');
});

test('cache-corrupt', async () => {
  const { p } = await page(plain);
  await reset(plain);
  const url = '/models/stories260K.gguf?t=corrupt';
  const a = await greedy(p, url, {});
  assert(!a.error, a.error);
  assert(await p.evaluate(() => window.idbCorrupt('t=corrupt')), 'damaged the cached bytes');
  const b = await greedy(p, url, {});
  assert(!b.error, b.error);
  eq(b.info.fromCache, false, 'a corrupted entry is not used');
  assert((await log(plain)).filter((x) => x.path.includes('t=corrupt')).length === 2, 'refetched from the network');
  assert(p.warnings.some((w) => /corrupt/.test(w)), 'a warning names the corrupt entry');
  eq(b.text, ref.text, 'greedy text after the refetch');
  const c = await greedy(p, url, {});
  eq(c.info.fromCache, true, 'the refetched copy is cached again');
});

test('quota-full', async () => {
  const { ctx, p } = await page(plain);
  const cdp = await ctx.newCDPSession(p);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: plain.url, quotaSize: 200000 });
  const est = await p.evaluate(() => navigator.storage.estimate());
  const r = await greedy(p, '/models/stories260K.gguf?t=quota', {});
  assert(!r.error, 'a full quota is not a failure: ' + r.error);
  eq(r.text, ref.text, 'greedy text');
  assert(p.warnings.some((w) => /not caching|quota full/.test(w)), 'a console warning says the model is not cached: ' + JSON.stringify(p.warnings));
  const files = await p.evaluate(() => window.idbFiles());
  assert(!files.some((x) => x.key.includes('t=quota')), 'nothing stored');
  return `estimate ${JSON.stringify(est)}; ` + p.warnings.find((w) => /not caching|quota full/.test(w)).slice(0, 100);
});

// A copy of a GGUF with tokenizer.chat_template = tpl added (a new key/value before the others; the tensor data
// re-aligned). Written by this script from the GGUF layout (gguf.md), not by edgelm.
function ggufWithTemplate(bytes, tpl) {
  let at = 0;
  const u32 = () => { const v = bytes.readUInt32LE(at); at += 4; return v; };
  const u64 = () => { const v = Number(bytes.readBigUInt64LE(at)); at += 8; return v; };
  const str = () => { const n = u64(); const v = bytes.toString('utf8', at, at + n); at += n; return v; };
  const SIZE = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const skip = (type) => {
    if (type === 8) { str(); return; }
    if (type === 9) { const et = u32(); const n = u64(); for (let i = 0; i < n; i++) skip(et); return; }
    at += SIZE[type];
  };
  eq(bytes.toString('latin1', 0, 4), 'GGUF', 'GGUF magic');
  at = 4;
  u32();
  const nTensors = u64(), nKv = u64();
  const kvStart = at;
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const key = str(); const type = u32();
    if (key === 'tokenizer.chat_template') throw new Error('the file already has a chat template');
    if (key === 'general.alignment' && type === 4) { alignment = bytes.readUInt32LE(at); }
    skip(type);
  }
  for (let i = 0; i < nTensors; i++) { str(); const nd = u32(); at += 8 * nd; u32(); u64(); }
  const infoEnd = at;
  const dataStart = Math.ceil(infoEnd / alignment) * alignment;
  const s = (x) => { const b = Buffer.from(x, 'utf8'); const n = Buffer.alloc(8); n.writeBigUInt64LE(BigInt(b.length)); return Buffer.concat([n, b]); };
  const t8 = Buffer.alloc(4); t8.writeUInt32LE(8);
  const kv = Buffer.concat([s('tokenizer.chat_template'), t8, s(tpl)]);
  const head = Buffer.from(bytes.subarray(0, kvStart));
  head.writeBigUInt64LE(BigInt(nKv + 1), 16);
  const meta = Buffer.concat([head, kv, bytes.subarray(kvStart, infoEnd)]);
  const pad = Buffer.alloc(Math.ceil(meta.length / alignment) * alignment - meta.length);
  return Buffer.concat([meta, pad, bytes.subarray(dataStart)]);
}

// `edgelm chat` (the native CLI of this tree) on piped turns: the greedy reply of each turn and the reuse line.
function nativeChat(file, turns, n, extra = []) {
  const cli = process.env.EDGELM_NATIVE_CLI || path.join(repo, 'build/native/edgelm');
  if (!fs.existsSync(cli)) return null;
  const replies = [], reused = [];
  let before = '';
  for (let k = 1; k <= turns.length; k++) {  // k turns: stdout = reply 1 \n ... reply k \n (a reply may hold newlines)
    const r = spawnSync(cli, ['chat', '-m', file, '--temp', '0', '-n', String(n), ...extra], { input: turns.slice(0, k).join('\n') + '\n' });
    if (r.status !== 0) throw new Error(`native chat failed: ${r.stderr}`);
    const out = r.stdout.toString('utf8');
    assert(out.startsWith(before) && out.endsWith('\n'), 'native chat output of the first turns is stable');
    replies.push(out.slice(before.length, -1));
    before = out;
    if (k === turns.length) {
      for (const m of r.stderr.toString('utf8').matchAll(/\[turn \d+: prompt (\d+) tokens, (\d+) reused, (\d+) prefilled/g)) reused.push({ prompt: +m[1], reused: +m[2] });
    }
    before = out.endsWith('\n') ? out : out + '\n';
  }
  return { cli, replies, reused };
}

// lm.chat: the model's own template (a copy of stories260K.gguf given the Llama-2 template, which writes <s> itself)
// and a built-in (chatml) on the plain file; greedy replies of two turns = `edgelm chat`'s; turn 2 reuses the KV
// cache of turn 1 (the same count the CLI reports); the rendered prompt = `edgelm template`'s; no template rejects.
test('chat', async () => {
  const tplJson = JSON.parse(fs.readFileSync(path.join(repo, 'tests/data/chat_templates/llama-2.json'), 'utf8'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgelm-chat-'));
  try {
    const withTpl = ggufWithTemplate(modelBytes, tplJson.chat_template);
    const file = path.join(tmp, 'stories260K-llama2-template.gguf');
    fs.writeFileSync(file, withTpl);
    const SYSTEM = 'You are a storyteller.';
    const turns = ['Hello', 'What is your name?'];
    const NT = 24;
    const natOwn = nativeChat(file, turns, NT, ['--system', SYSTEM]);
    const natChatml = nativeChat(path.join(sharedModels, 'stories260K.gguf'), turns, NT, ['--chat-template', 'chatml']);
    const { p } = await page(plain);
    const r = await p.evaluate(async ({ b64, SYSTEM, turns, NT }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const run = async (lm, base, opts) => {
        const msgs = base.slice(), out = [];
        for (const t of turns) {
          msgs.push({ role: 'user', content: t });
          let reply = '';
          for await (const piece of lm.chat(msgs, Object.assign({ maxTokens: NT, temperature: 0 }, opts))) reply += piece;
          out.push({ reply, stats: lm.stats, prompt: lm.lastPrompt });
          msgs.push({ role: 'assistant', content: reply });
        }
        return out;
      };
      const a = await window.edgelm.load(bytes.buffer);
      const own = await run(a, [{ role: 'system', content: SYSTEM }], {});
      const infoOwn = a.info;
      let refused = '';
      try { for await (const x of a.chat([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }], { maxTokens: 1 })) void x; } catch (e) { refused = e.message; }
      let badRole = '';
      try { for await (const x of a.chat([{ role: 'us er', content: 'a' }], { maxTokens: 1 })) void x; } catch (e) { badRole = e.message; }
      await a.unload();
      const b = await window.edgelm.load('/models/stories260K.gguf', { cache: 'none' });
      const infoPlain = b.info;
      let none = '';
      try { for await (const x of b.chat([{ role: 'user', content: 'Hi' }])) void x; } catch (e) { none = e.message; }
      let unknown = '';
      try { for await (const x of b.chat([{ role: 'user', content: 'Hi' }], { chatTemplate: 'nonesuch' })) void x; } catch (e) { unknown = e.message; }
      const chatml = await run(b, [], { chatTemplate: 'chatml' });
      await b.unload();
      return { own, chatml, infoOwn, infoPlain, none, unknown, refused, badRole };
    }, { b64: withTpl.toString('base64'), SYSTEM, turns, NT });
    eq(r.infoOwn.hasChatTemplate, true, 'info.hasChatTemplate of the file with a template');
    eq(r.infoPlain.hasChatTemplate, false, 'info.hasChatTemplate of stories260K.gguf');
    assert(/no chat template/.test(r.none) && /chatTemplate/.test(r.none) && /chatml/.test(r.none), 'no template and no chatTemplate option rejects, naming the cause: ' + r.none);
    assert(/unknown built-in chat template 'nonesuch'/.test(r.unknown), 'an unknown built-in rejects: ' + r.unknown);
    assert(/must alternate/.test(r.refused), "the template's raise_exception rejects: " + r.refused);
    assert(/bad message role/.test(r.badRole), 'a bad role rejects: ' + r.badRole);
    // the rendered prompt of turn 2 = `edgelm template` on the same conversation
    const cli = process.env.EDGELM_NATIVE_CLI || path.join(repo, 'build/native/edgelm');
    const notes = [];
    for (const [name, got, nat] of [['own template', r.own, natOwn], ['chatml', r.chatml, natChatml]]) {
      for (const [i, t] of got.entries()) {
        assert(t.reply.length > 0, `${name} turn ${i + 1}: a reply`);
        eq(t.stats.genTokens, NT, `${name} turn ${i + 1}: tokens generated (no end-of-turn token in this vocabulary)`);
      }
      assert(got[1].stats.reusedTokens > 0 && got[1].stats.reusedTokens >= got[0].stats.promptTokens,
        `${name}: turn 2 reuses turn 1's prompt from the KV cache (${got[1].stats.reusedTokens} reused of ${got[1].stats.promptTokens}; turn 1 prompt ${got[0].stats.promptTokens})`);
      eq(got[0].stats.reusedTokens, 0, `${name}: turn 1 reuses nothing`);
      if (nat) {
        for (let i = 0; i < turns.length; i++) eq(got[i].reply, nat.replies[i], `${name} turn ${i + 1} reply vs the native CLI (${nat.cli} chat)`);
        eq(JSON.stringify(got.map((t) => ({ prompt: t.stats.promptTokens, reused: t.stats.reusedTokens }))), JSON.stringify(nat.reused), `${name}: prompt/reused tokens per turn vs the native CLI`);
      } else notes.push(`${name}: no native CLI to compare with`);
    }
    if (fs.existsSync(cli)) {
      const mf = path.join(tmp, 'messages.json');
      fs.writeFileSync(mf, JSON.stringify([{ role: 'system', content: SYSTEM }, { role: 'user', content: turns[0] }, { role: 'assistant', content: r.own[0].reply }, { role: 'user', content: turns[1] }]));
      const t = spawnSync(cli, ['template', '-m', file, '--messages', mf]);
      eq(t.status, 0, 'edgelm template ran: ' + t.stderr);
      eq(r.own[1].prompt, t.stdout.toString('utf8'), 'turn 2 rendered prompt vs `edgelm template`');
      assert(r.own[1].prompt.startsWith('<s>[INST] <<SYS>>'), 'the template writes its own <s>');
    }
    return (notes.length ? notes.join('; ') + '; ' : 'replies = native CLI; ') +
      `turn 2: ${r.own[1].stats.reusedTokens} of ${r.own[1].stats.promptTokens} prompt tokens reused (own template), ${r.chatml[1].stats.reusedTokens} of ${r.chatml[1].stats.promptTokens} (chatml)`;
  } finally { fs.rmSync(tmp, { recursive: true, force: true }); }
});

test('sha256-mismatch', async () => {
  const { p } = await page(plain);
  const r = await greedy(p, '/models/stories260K.gguf?t=sha', { sha256: 'ab'.repeat(32) });
  assert(r.error && /sha256 mismatch/.test(r.error), 'rejects: ' + r.error);
  const files = await p.evaluate(() => window.idbFiles());
  assert(!files.some((x) => x.key.includes('t=sha')), 'nothing cached: ' + JSON.stringify(files));
  return r.error.slice(0, 90);
});

test('http-404', async () => {
  const { p } = await page(plain);
  const r = await greedy(p, '/models/missing.gguf', {});
  assert(r.error && /404/.test(r.error), 'rejects with 404: ' + r.error);
  return r.error;
});

test('not-a-model', async () => {
  const { p } = await page(plain);
  const r = await greedy(p, '/models/stories260K.gguf?html=1', {});
  assert(r.error && /bad model file/.test(r.error), 'an HTML page rejects with the engine\'s message: ' + r.error);
  const files = await p.evaluate(() => window.idbFiles().catch(() => []));
  assert(!files.some((x) => x.key.includes('html=1')), 'the bad file is not cached');
  return r.error;
});

test('unreachable', async () => {
  const { p } = await page(plain);
  const r = await greedy(p, 'http://127.0.0.1:9/model.gguf', { cache: 'none' });
  assert(r.error && /network error/.test(r.error), 'rejects with a network error: ' + r.error);
  return r.error;
});

test('stall-timeout', async () => {
  const { p } = await page(plain);
  const r = await greedy(p, '/models/stories260K.gguf?stall=1000', { cache: 'none', timeoutMs: 1500, retries: 0 });
  assert(r.error && /stalled/.test(r.error), 'a stalled body rejects: ' + r.error);
  return r.error;
});

test('abort', async () => {
  const { p } = await page(plain);
  const r = await p.evaluate(async ({ PROMPT }) => {
    const lm = await window.edgelm.load('/models/stories260K.gguf', { cache: 'none' });
    const ac = new AbortController();
    let n = 0;
    for await (const piece of lm.generate(PROMPT, { maxTokens: 400, temperature: 0, signal: ac.signal })) { n++; if (n === 3) ac.abort(); }
    await new Promise((r) => setTimeout(r, 50));
    const again = await lm.complete(PROMPT, { maxTokens: 8, temperature: 0 });
    const st = lm.stats;
    // unload during a generation: the iterator ends, nothing crashes
    let m = 0, unloadErr = '';
    try {
      for await (const piece of lm.generate(PROMPT, { maxTokens: 400, temperature: 0 })) { m++; if (m === 2) await lm.unload(); }
    } catch (e) { unloadErr = e.message; }
    let after = '';
    try { await lm.complete(PROMPT); } catch (e) { after = e.message; }
    return { n, again, st, after, m, unloadErr };
  }, { PROMPT });
  assert(r.m < 400, 'unload stops a running generation (' + r.m + ' pieces, ' + r.unloadErr + ')');
  eq(r.n, 3, 'no piece after abort');
  assert(r.again.length > 0, 'the model still answers after an abort');
  assert(/unloaded/.test(r.after), 'unload ends the model: ' + r.after);
});

test('resume-in-load', async () => {
  const { p } = await page(plain);
  await reset(plain);
  const r = await greedy(p, '/models/stories260K.gguf?cut=400000&tag=a', { cache: 'none' });
  assert(!r.error, r.error);
  eq(r.text, ref.text, 'greedy text after a resumed download');
  const l = (await log(plain)).filter((x) => x.path.includes('tag=a'));
  assert(l.length === 2 && l[0].cut && /^bytes=\d+-$/.test(l[1].range) && l[1].status === 206, 'a cut download resumes with a Range request: ' + JSON.stringify(l));
  const from = +/\d+/.exec(l[1].range)[0];
  assert(from > 0 && from <= 400000, 'the range starts where the body stopped');
  return `resumed at byte ${from} (206)`;
});

test('resume-next-load', async () => {
  const { p } = await page(plain);
  await reset(plain);
  const chunk = 256 * 1024;
  const a = await greedy(p, '/models/stories260K.gguf?cut=700000&tag=b', { retries: 0, chunkBytes: chunk });
  assert(a.error && /interrupted/.test(a.error), 'a cut download without retries rejects: ' + a.error);
  const files = await p.evaluate(() => window.idbFiles());
  const f = files.find((x) => x.key.includes('tag=b'));
  assert(f && !f.complete && f.have === 2 * chunk, 'a partial entry (not a usable cache entry) of the whole chunks: ' + JSON.stringify(f));
  const b = await greedy(p, '/models/stories260K.gguf?cut=700000&tag=b', { chunkBytes: chunk });
  assert(!b.error, b.error);
  eq(b.info.fromCache, false, 'not a cache hit');
  const l = (await log(plain)).filter((x) => x.path.includes('tag=b'));
  eq(l.length, 2, 'two requests in all');
  eq(l[1].range, `bytes=${2 * chunk}-`, 'the next load resumes with a Range request from the stored part');
  eq(l[1].status, 206, 'partial content');
  eq(b.text, ref.text, 'greedy text');
  const c = await greedy(p, '/models/stories260K.gguf?cut=700000&tag=b', { chunkBytes: chunk });
  eq(c.info.fromCache, true, 'then cached');
  return `${a.error.slice(0, 80)}...; resumed with ${l[1].range}`;
});

test('no-range-server', async () => {
  const { p } = await page(plain);
  await reset(plain);
  const r = await greedy(p, '/models/stories260K.gguf?cut=300000&tag=c&norange=1', { cache: 'none' });
  assert(!r.error, r.error);
  eq(r.text, ref.text, 'a server without Range support: the download starts over');
});

test('split', async () => {
  const { p } = await page(plain);
  const urls = [0, 1, 2].map((i) => `/split/stories260K.gguf.part${i}-of-3`);
  const r = await greedy(p, urls, { sha256: SHA });
  assert(!r.error, r.error);
  eq(r.text, ref.text, 'greedy text from a model in 3 parts');
  const b = await greedy(p, urls, { sha256: SHA });
  eq(b.info.fromCache, true, 'the parts are cached');
  eq(b.text, ref.text, 'greedy text from the cached parts');
});

// A GGUF split by llama.cpp's gguf-split (tests/data/split, 3 parts, each a GGUF with split.no / split.count): the
// browser engine reads whole GGUFs only (the split reader is left out of it for the single-thread .wasm's 150 KB
// budget; several URLs of one file's byte ranges are the 'split' test above), so the parts reject with a message
// that names the split and the way out, and nothing hangs.
test('gguf-split', async () => {
  const { p } = await page(plain);
  const urls = [1, 2, 3].map((i) => `/test-data/split/stories260K-q8_0-0000${i}-of-00003.gguf`);
  const r = await greedy(p, urls, { cache: 'none' }, { maxTokens: 4 });
  assert(/part 1 of a GGUF split into 3 \(gguf-split\).*llama-gguf-split --merge/.test(r.error || ''), 'gguf-split parts reject with a clear message: ' + JSON.stringify(r.error));
  const one = await greedy(p, urls[1], { cache: 'none' }, { maxTokens: 4 });
  assert(/part 2 of a GGUF split into 3/.test(one.error || ''), 'a later part alone rejects: ' + JSON.stringify(one.error));
});

test('bytes-and-file', async () => {
  const { p } = await page(plain);
  const r = await p.evaluate(async ({ PROMPT, N }) => {
    const buf = await (await fetch('/models/stories260K.gguf')).arrayBuffer();
    const a = await window.edgelm.load(buf);
    const ta = await a.complete(PROMPT, { maxTokens: N, temperature: 0 });
    await a.unload();
    const b = await window.edgelm.load(new File([buf], 'stories260K.gguf'));
    const tb = await b.complete(PROMPT, { maxTokens: N, temperature: 0 });
    await b.unload();
    return { ta: PROMPT + ta, tb: PROMPT + tb };
  }, { PROMPT, N });
  eq(r.ta, ref.text, 'from an ArrayBuffer');
  eq(r.tb, ref.text, 'from a File');
});

test('responsive', async () => {
  const { p } = await page(plain);
  const r = await greedy(p, '/models/stories260K.gguf', { cache: 'none', context: 512 }, { maxTokens: 500 });
  assert(!r.error, r.error);
  assert(r.ticks >= Math.floor(r.genMs / 5 / 4), `the page's 5 ms timer kept firing during generation (${r.ticks} ticks in ${r.genMs.toFixed(0)} ms)`);
  return `${r.ticks} timer ticks in ${r.genMs.toFixed(0)} ms of generation`;
});

test('greedy-mt', async () => {
  const { p } = await page(iso);
  const coi = await p.evaluate(() => self.crossOriginIsolated);
  assert(coi, 'the COOP/COEP page is crossOriginIsolated');
  const r = await greedy(p, '/models/stories260K.gguf', { cache: 'none', threads: 2 });
  assert(!r.error, r.error);
  eq(r.info.build, 'mt', 'build');
  eq(r.info.threads, 2, 'threads');
  eq(r.text, ref.text, 'greedy text with the pthreads build and 2 threads');
  return `decode ${r.stats.genTokPerS.toFixed(0)} tok/s with 2 threads`;
});

test('threads-without-isolation', async () => {
  const { p } = await page(plain);
  const r = await greedy(p, '/models/stories260K.gguf', { cache: 'none', threads: 2 });
  assert(!r.error, r.error);
  eq(r.info.build, 'st', 'falls back to the single-thread build');
  assert(p.warnings.some((w) => /crossOriginIsolated/.test(w)), 'with a warning');
});

// tests/web/consumer: C++ on edgelm + backends/emscripten (fetch.hpp + engine.hpp), no edgelm JS, on the main thread
async function consumer(q) {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  p.on('pageerror', (e) => say(`    [pageerror] ${e.message}`));
  await p.goto(`${plain.url}/tests/consumer.html?${q}`);
  await p.waitForFunction(() => window.consumer && (window.consumer.text || window.consumer.error), null, { timeout: 60000 });
  return await p.evaluate(() => window.consumer);
}
test('cpp-consumer', async () => {
  if (!fs.existsSync(path.join(repo, 'build/web/consumer/consumer.js'))) throw new Error('build/web/consumer/consumer.js missing (tools/build_web.sh builds it)');
  await reset(plain);
  const a = await consumer('model=' + encodeURIComponent('/models/stories260K.gguf?cut=500000&tag=cpp'));
  assert(!a.error, a.error);
  eq(a.text, ref.text, 'greedy text of the C++ consumer (fetched with fetch.hpp, resumed after a cut)');
  const l = (await log(plain)).filter((x) => x.path.includes('tag=cpp'));
  assert(l.length === 2 && /^bytes=\d+-$/.test(l[1].range) && l[1].status === 206, 'fetch.hpp resumed with a Range request: ' + JSON.stringify(l));
  const b = await consumer('model=' + encodeURIComponent('/models/missing.gguf'));
  assert(b.error && /io_error: HTTP 404/.test(b.error), 'a 404 is an edgelm io_error: ' + b.error);
  const c = await consumer('model=' + encodeURIComponent([0, 1, 2].map((i) => `/split/stories260K.gguf.part${i}-of-3`).join(' ')));
  eq(c.text, ref.text, 'split model through fetch.hpp');
  const d = await consumer('model=' + encodeURIComponent('/models/stories260K.gguf?html=1'));
  assert(d.error && /absurd_dimension|bad_magic|truncated/.test(d.error), 'an HTML page is rejected by the loader: ' + d.error);
  return `progress ${a.progress}; 404 -> ${b.error.slice(0, 60)}`;
});

// fetch.hpp's own verified IndexedDB cache (no edgelm JS): cached after a verified download, read back and
// verified, a corrupted entry dropped and fetched again, a wrong sha256 rejected and not kept, an HTML page not
// kept, a full quota only skips the cache, cache=none stores nothing.
test('cpp-cache', async () => {
  await reset(plain);
  const ctx = await browser.newContext();
  const open = async (q) => {
    const p = await ctx.newPage();
    p.on('pageerror', (e) => say(`    [pageerror] ${e.message}`));
    await p.goto(`${plain.url}/tests/consumer.html?${q}`);
    await p.waitForFunction(() => window.consumer && (window.consumer.text || window.consumer.error), null, { timeout: 60000 });
    return p;
  };
  const run = async (q) => { const p = await open(q); const r = await p.evaluate(() => window.consumer); await p.close(); return r; };
  const idb = async (action, part) => {
    const p = await ctx.newPage();
    await p.goto(`${plain.url}/tests/consumer.html`);
    const r = await p.evaluate(async ({ action, part }) => {
      const db = await new Promise((res, rej) => { const q = indexedDB.open('edgelm-cpp-models', 1);
        q.onupgradeneeded = () => { q.result.createObjectStore('files', { keyPath: 'key' }); q.result.createObjectStore('chunks', { keyPath: ['key', 'i'] }); };
        q.onsuccess = () => res(q.result); q.onerror = () => rej(q.error); });
      const all = (store) => new Promise((res, rej) => { const q = db.transaction(store).objectStore(store).getAll(); q.onsuccess = () => res(q.result); q.onerror = () => rej(q.error); });
      try {
        if (action === 'keys') return (await all('files')).map((f) => f.key);
        const c = (await all('chunks')).find((x) => x.key.includes(part) && x.i === 0);
        if (!c) return false;
        new Uint8Array(c.data)[1000] ^= 0x5a;
        await new Promise((res, rej) => { const tx = db.transaction('chunks', 'readwrite'); tx.objectStore('chunks').put(c); tx.oncomplete = res; tx.onerror = () => rej(tx.error); });
        return true;
      } finally { db.close(); }
    }, { action, part });
    await p.close();
    return r;
  };
  const count = async (part) => (await log(plain)).filter((x) => x.path.includes(part)).length;
  const q = (url, extra = '') => 'model=' + encodeURIComponent(url) + extra;
  const url = '/models/stories260K.gguf?t=cppcache';
  const a = await run(q(url, '&sha256=' + SHA));
  assert(!a.error, a.error);
  eq(a.source, 'network', 'first load from the network');
  eq(a.text, ref.text, 'greedy text after the download');
  assert((await idb('keys')).some((k) => k.includes('t=cppcache')), 'the verified download is cached');
  const b = await run(q(url, '&sha256=' + SHA));
  eq(b.source, 'cache', 'second load from the cache');
  eq(b.text, ref.text, 'greedy text from the cached bytes');
  eq(await count('t=cppcache'), 1, 'no second request');
  assert(await idb('corrupt', 't=cppcache'), 'damaged the cached bytes');
  const c = await run(q(url, '&sha256=' + SHA));
  eq(c.source, 'network', 'a corrupted entry is not used');
  assert(/corrupt/.test(c.warnings), 'a warning names the corrupt entry: ' + c.warnings);
  eq(c.text, ref.text, 'greedy text after the refetch');
  eq(await count('t=cppcache'), 2, 'fetched again');
  const d = await run(q('/models/stories260K.gguf?t=cppbad', '&sha256=' + '0'.repeat(64)));
  assert(d.error && /sha256 mismatch/.test(d.error), 'a wrong sha256 fails: ' + d.error);
  const e = await run(q('/models/stories260K.gguf?html=1&t=cpphtml'));
  assert(e.error && /bad_magic/.test(e.error), 'an HTML page is rejected: ' + e.error);
  assert(/not a model file/.test(e.warnings), 'and not cached: ' + e.warnings);
  const f = await run(q('/models/stories260K.gguf?t=cppnone', '&cache=none'));
  eq(f.text, ref.text, 'greedy text with cache=none');
  const keys = await idb('keys');
  assert(!keys.some((k) => /cppbad|cpphtml|cppnone/.test(k)), 'nothing else stored: ' + JSON.stringify(keys));
  await ctx.close();
  const qctx = await browser.newContext();  // (a fresh profile, as the package's quota-full test)
  const qp = await qctx.newPage();
  await qp.goto(`${plain.url}/tests/consumer.html`);
  const cdp = await qctx.newCDPSession(qp);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: plain.url, quotaSize: 200000 });
  await qp.goto(`${plain.url}/tests/consumer.html?${q('/models/stories260K.gguf?t=cppquota', '&sha256=' + SHA)}`);
  await qp.waitForFunction(() => window.consumer && (window.consumer.text || window.consumer.error), null, { timeout: 60000 });
  const g = await qp.evaluate(() => window.consumer);
  assert(!g.error, 'a full quota is not a failure: ' + g.error);
  eq(g.text, ref.text, 'greedy text with a full quota');
  assert(/quota full|QuotaExceeded/.test(g.warnings), 'a warning says the model is not cached: ' + g.warnings);
  const stored = await qp.evaluate(() => new Promise((res) => { const q = indexedDB.open('edgelm-cpp-models', 1);
    q.onsuccess = () => { const r = q.result.transaction('files').objectStore('files').getAllKeys(); r.onsuccess = () => { res(r.result); q.result.close(); }; }; }));
  assert(!stored.some((k) => k.includes('t=cppquota')), 'nothing stored with a full quota: ' + JSON.stringify(stored));
  await qctx.close();
  return `cached, read back, corrupt -> refetched; quota: ${g.warnings.trim().slice(0, 80)}`;
});

// examples/web-chat served by its own serve.mjs (COOP/COEP): answers, output filter, sanitised input, off switch,
// and an offline reload that still answers (app shell from the service worker, model from the IndexedDB cache).
test('web-chat', async () => {
  const { spawn } = await import('node:child_process');
  const srv = spawn(process.execPath, [path.join(repo, 'examples/web-chat/serve.mjs'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise((res, rej) => {
      let buf = '';
      srv.stdout.on('data', (d) => { buf += d; const m = /web-chat: (http:\S+)/.exec(buf); if (m) res(m[1]); });
      srv.on('exit', (c) => rej(new Error('serve.mjs exited ' + c)));
      setTimeout(() => rej(new Error('serve.mjs did not start')), 10000);
    });
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    p.on('pageerror', (e) => say(`    [pageerror] ${e.message}`));
    const ready = () => p.waitForFunction(() => window.edgelmChat && window.edgelmChat.state && window.edgelmChat.state().ready, null, { timeout: 60000 });
    const ask = async (text) => {
      const n = await p.evaluate(() => window.edgelmChat.state().replies);
      await p.fill('#input', text);
      await p.click('#send');
      await p.waitForFunction((n) => (window.edgelmChat.state().replies > n || document.querySelector('.msg.error')) && !window.edgelmChat.state().busy, n, { timeout: 60000 });
      const err = await p.evaluate(() => { const e = document.querySelector('.msg.error'); return e ? e.textContent : ''; });
      if (err) throw new Error('the chat shows an error: ' + err);
      return await p.evaluate(() => { const b = [...document.querySelectorAll('.msg.bot')]; return b[b.length - 1].textContent; });
    };
    if (process.env.VERBOSE) say('    web-chat: await p.goto(url);');
    await p.goto(url);
    await ready();
    const info = await p.evaluate(() => window.edgelmChat.state().info);
    eq(info.build, 'mt', 'serve.mjs isolates the page: the pthreads build');
    if (process.env.VERBOSE) say('    web-chat: const a = await ask(');
    const a = await ask('Once upon a time there was a king.');
    assert(a.length > 0, 'a reply');
    await p.evaluate(() => { window.edgelmChat.outputFilter = (t) => '[filtered] ' + t.toUpperCase(); });
    if (process.env.VERBOSE) say('    web-chat: const b = await ask(');
    const b = await ask('Tell me more.');
    assert(b.startsWith('[filtered] ') && b === b.toUpperCase().replace('[FILTERED]', '[filtered]'), 'the output filter hook: ' + b);
    await p.evaluate(() => { window.edgelmChat.outputFilter = (t) => t; });
    await p.fill('#input', 'ab\u0007c\u202Ed' + 'x'.repeat(3000));
    await p.click('#send');
    await p.waitForFunction(() => !window.edgelmChat.state().busy && window.edgelmChat.state().replies >= 3, null, { timeout: 60000 });
    const u = await p.evaluate(() => { const m = [...document.querySelectorAll('.msg.user')]; return m[m.length - 1].textContent; });
    eq(u.slice(0, 4), 'abcd', 'control characters removed');
    assert(u.length <= 2000, 'length limit: ' + u.length);
    if (process.env.VERBOSE) say('    web-chat: // off switch');
    // off switch
    await p.click('#power');
    await p.waitForFunction(() => !window.edgelmChat.state().on && !window.edgelmChat.state().ready, null, { timeout: 10000 });
    assert(await p.evaluate(() => document.getElementById('input').disabled), 'input disabled while off');
    await p.click('#power');
    await ready();
    if (process.env.VERBOSE) say('    web-chat: // offline reload');
    // offline reload
    await p.waitForFunction(() => navigator.serviceWorker && navigator.serviceWorker.controller, null, { timeout: 20000 });
    if (process.env.VERBOSE) say('    web-chat: await ctx.setOffline(true);');
    await ctx.setOffline(true);
    await p.reload();
    await ready();
    const off = await p.evaluate(() => window.edgelmChat.state().info);
    eq(off.fromCache, true, 'offline: the model from the cache');
    if (process.env.VERBOSE) say('    web-chat: const c = await ask(');
    const c = await ask('The end.');
    assert(c.length > 0, 'offline reload still answers');
    eq(await p.evaluate(() => window.edgelmChat.state().mode), 'text', 'the default model has no chat template: plain-text prompts');
    await ctx.close();
    // ?template=chatml: the page speaks through lm.chat (a built-in template); turn 2 reuses the KV cache of turn 1
    const ctx2 = await browser.newContext();
    const p2 = await ctx2.newPage();
    p2.on('pageerror', (e) => say(`    [pageerror] ${e.message}`));
    await p2.goto(url + '?template=chatml');
    await p2.waitForFunction(() => window.edgelmChat && window.edgelmChat.state && window.edgelmChat.state().ready, null, { timeout: 60000 });
    const chatReply = async (text) => {
      const n = await p2.evaluate(() => window.edgelmChat.state().replies);
      await p2.fill('#input', text);
      await p2.click('#send');
      await p2.waitForFunction((n) => (window.edgelmChat.state().replies > n || document.querySelector('.msg.error')) && !window.edgelmChat.state().busy, n, { timeout: 60000 });
      const err = await p2.evaluate(() => { const e = document.querySelector('.msg.error'); return e ? e.textContent : ''; });
      if (err) throw new Error('the chat (template mode) shows an error: ' + err);
      return await p2.evaluate(() => window.edgelmChat.state());
    };
    const s1 = await chatReply('Hello there.');
    eq(s1.mode, 'chat', '?template=chatml: lm.chat mode');
    const s2 = await chatReply('Tell me a story.');
    assert(s2.stats.reusedTokens > 0 && s2.stats.reusedTokens >= s1.stats.promptTokens, `turn 2 reuses turn 1 from the KV cache: ${JSON.stringify(s2.stats)}`);
    await ctx2.close();
    return `replies: ${JSON.stringify(a.slice(0, 40))}...; offline reply ${JSON.stringify(c.slice(0, 30))}...; chatml mode turn 2: ${s2.stats.reusedTokens} of ${s2.stats.promptTokens} tokens reused`;
  } finally { srv.kill(); }
});

test('bad-options', async () => {
  const { p } = await page(plain);
  const r = await p.evaluate(async () => {
    const out = [];
    for (const o of [{ threads: 0 }, { context: -1 }, { context: 100000 }, { sha256: 'xyz' }, { cache: 'sometimes' }]) {
      try { const lm = await window.edgelm.load('/models/stories260K.gguf', Object.assign({ cache: 'none' }, o)); await lm.unload(); out.push('loaded'); } catch (e) { out.push(e.message); }
    }
    const lm = await window.edgelm.load('/models/stories260K.gguf', { cache: 'none' });
    for (const g of [{ temperature: -1 }, { topP: 2 }, { maxTokens: 'x' }]) {
      try { await lm.complete('x', g); out.push('generated'); } catch (e) { out.push(e.message); }
    }
    await lm.unload();
    return out;
  });
  for (const m of r) assert(m !== 'loaded' && m !== 'generated' && m.length > 5, 'absurd options reject: ' + JSON.stringify(r));
  return r.map((m) => m.slice(0, 40)).join(' | ');
});

for (const t of tests) {
  if (only && !only.includes(t.name)) continue;
  const t0 = Date.now();
  try {
    const note = await Promise.race([t.fn(), new Promise((_, rej) => setTimeout(() => rej(new Error('timed out after 120 s')), 120000))]);
    if (typeof note === 'string' && note.startsWith('SKIP')) { skipped++; say(`skip ${t.name}: ${note}`); continue; }
    passed++;
    say(`ok   ${t.name} (${Date.now() - t0} ms)${note ? ': ' + note : ''}`);
  } catch (e) {
    failed++;
    say(`FAIL ${t.name}: ${e.message}`);
  }
  for (const c of browser.contexts()) await c.close().catch(() => {});
}
await browser.close();
await plain.close();
await iso.close();
fs.rmSync(profile, { recursive: true, force: true });
say(`web tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);

// edgelm/worker.js - the Web Worker that runs one model (a classic worker script; index.js starts it).
// It loads the single-thread build (edgelm-st) or, when the page is crossOriginIsolated and more than one
// thread is asked for, the pthreads build (edgelm-mt); fills the model bytes into the wasm heap (cache.js),
// and runs the C ABI of backends/emscripten/include/edgelm/backends/emscripten/c_api.h one token at a time,
// yielding to its event loop between tokens so that a cancel message stops a generation within a token.
// Chat: the first chat request loads edgelm-text (the chat-template renderer, text_api.h, a module of its own), which
// renders the conversation with the model's template (or a named built-in); the engine then tokenizes the rendered
// text with its special tokens parsed and nothing added, and keeps the KV cache of the prefix it shares with the
// previous request.
/* eslint-env worker */
'use strict';
const BASE = new URL('./', self.location.href).href;
importScripts(BASE + 'cache.js');
const { fetchModel, clearCache, LoadError } = self.edgelmFetch;

let M = null;        // the emscripten module
let T = null;        // edgelm-text (chat templates), loaded on the first chat request
let E = 0;           // edgelm_engine*
let build = '';
let gen = null;      // {id, cancelled}
const enc = new TextEncoder();
const dec = new TextDecoder();

function heap() {
  const buf = M.wasmMemory ? M.wasmMemory.buffer : M.HEAPU8.buffer;
  if (M.HEAPU8.buffer !== buf) return new Uint8Array(buf);
  return M.HEAPU8;
}
function cstr(p) {
  const h = heap();
  let e = p;
  while (h[e]) e++;
  return dec.decode(h.slice(p, e));
}
function engineError() { return cstr(M._edgelm_error()); }
function text(p, n) { return n > 0 ? dec.decode(heap().slice(p, p + n)) : ''; }
// A JS string into a fresh heap buffer: [ptr, byteLength] (NUL-terminated); free with M._free.
function putString(s) {
  const b = enc.encode(s);
  const p = M._malloc(b.length + 1);
  if (!p) throw new Error('out_of_memory: no heap for a string of ' + b.length + ' bytes');
  const h = heap();
  h.set(b, p);
  h[p + b.length] = 0;
  return [p, b.length];
}

// Relaxed SIMD (i16x8.relaxed_dot_i8x16_i7x16_s, which the q4_0 products of the *-relaxed builds use): a module
// whose one function uses it validates.
function relaxedSimd() {
  const z = new Array(16).fill(0);
  const body = [0x00, 0xfd, 0x0c, ...z, 0xfd, 0x0c, ...z, 0xfd, 0x92, 0x02, 0x0b];
  const bytes = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00,
                 0x0a, body.length + 2, 0x01, body.length, ...body];
  try { return WebAssembly.validate(new Uint8Array(bytes)); } catch (_) { return false; }
}

let relaxed = false;
async function startModule(threads, simd) {
  const mt = threads > 1;
  build = mt ? 'mt' : 'st';
  let name = 'edgelm-' + build + '.js';
  relaxed = false;
  if (simd !== 'simd128' && relaxedSimd()) {
    try { importScripts(BASE + 'edgelm-' + build + '-relaxed.js'); relaxed = true; name = 'edgelm-' + build + '-relaxed.js'; } catch (_) { /* not built: the plain one */ }
  }
  if (!relaxed) importScripts(BASE + name);
  const factory = relaxed ? (mt ? self.EdgelmMTR : self.EdgelmSTR) : (mt ? self.EdgelmMT : self.EdgelmST);
  const cfg = {
    locateFile: (f) => BASE + f,
    print: () => {}, printErr: (m) => console.warn('edgelm: ' + m),
  };
  if (mt) { cfg.mainScriptUrlOrBlob = BASE + name; cfg.edgelmPoolSize = threads - 1; }
  M = await factory(cfg);
}

function post(msg, transfer) { self.postMessage(msg, transfer || []); }

async function textModule() {
  if (!T) {
    importScripts(BASE + 'edgelm-text.js');
    T = await self.EdgelmText({ locateFile: (f) => BASE + f, print: () => {}, printErr: (m) => console.warn('edgelm-text: ' + m) });
  }
  return T;
}
function textCstr(p) {
  const h = T.HEAPU8;
  let e = p;
  while (h[e]) e++;
  return dec.decode(h.slice(p, e));
}

// messages [{role, content}] -> the prompt text the chat template renders (add_generation_prompt on).
async function renderChat(messages, o) {
  const name = o.chatTemplate;
  if (name !== undefined && name !== null && (typeof name !== 'string' || !name)) throw new TypeError('chatTemplate must be the name of a built-in chat template');
  if (!Array.isArray(messages) || messages.length === 0) throw new TypeError('chat: messages must be a non-empty array of {role, content}');
  const parts = [];
  messages.forEach((m, i) => {
    if (!m || typeof m !== 'object') throw new TypeError(`chat: messages[${i}] is not an object {role, content}`);
    if (typeof m.role !== 'string') throw new TypeError(`chat: messages[${i}].role must be a string`);
    if (typeof m.content !== 'string') throw new TypeError(`chat: messages[${i}].content must be a string`);
    parts.push(enc.encode(m.role), enc.encode(m.content));
  });
  const info = JSON.parse(cstr(M._edgelm_chat_info(E)));
  const t = await textModule();
  if (!name && info.template === null) {
    throw new Error('chat: the model has no chat template (its file has no tokenizer.chat_template); pass chatTemplate: NAME, ' +
                    'one of the built-ins: ' + textCstr(t._edgelm_text_builtins()));
  }
  const ptrs = [];
  const put = (bytes) => {
    const p = t._malloc(bytes.length + 1);
    if (!p) throw new Error('out_of_memory: no heap for the chat template renderer');
    ptrs.push(p);
    t.HEAPU8.set(bytes, p);
    t.HEAPU8[p + bytes.length] = 0;
    return p;
  };
  try {
    const tpl = name ? null : enc.encode(info.template);
    const tp = tpl ? put(tpl) : 0;
    const np = name ? put(enc.encode(name)) : 0;
    const total = parts.reduce((a, b) => a + b.length, 0);
    const sp = t._malloc(total + 1);
    if (!sp) throw new Error('out_of_memory: no heap for the chat messages');
    ptrs.push(sp);
    let at = sp;
    for (const b of parts) { t.HEAPU8.set(b, at); at += b.length; }
    const lp = t._malloc(parts.length * 4 + 4);
    if (!lp) throw new Error('out_of_memory: no heap for the chat messages');
    ptrs.push(lp);
    new Uint32Array(t.HEAPU8.buffer, lp, parts.length).set(parts.map((b) => b.length));
    const bp = info.bos === null ? 0 : put(enc.encode(info.bos));
    const ep = info.eos === null ? 0 : put(enc.encode(info.eos));
    const n = t._edgelm_text_render(tp, tpl ? tpl.length : 0, np, sp, lp, messages.length, bp, ep, 1);
    if (n < 0) throw new Error('chat: ' + textCstr(t._edgelm_text_error()));
    const op = t._edgelm_text_out();
    return dec.decode(t.HEAPU8.slice(op, op + n));
  } finally {
    for (const p of ptrs) t._free(p);
  }
}

// Source -> heap buffer. Returns {ptr, size, fromCache, finish}.
async function fill(src, opt, id) {
  const onProgress = (p) => post({ id, type: 'progress', progress: p });
  const alloc = (n) => {
    const p = M._edgelm_alloc(n);
    if (!p) throw new LoadError(engineError());
    return p;
  };
  if (src.kind === 'urls') {
    return await fetchModel(src.urls, {
      sha256: opt.sha256, cache: opt.cache, retries: opt.retries, timeoutMs: opt.timeoutMs, chunkBytes: opt.chunkBytes, onProgress,
    }, alloc, (p) => M._edgelm_free(p), heap);
  }
  // bytes (ArrayBuffer) or a Blob/File, read chunk by chunk
  const size = src.kind === 'bytes' ? src.bytes.byteLength : src.blob.size;
  if (size === 0) throw new LoadError('empty model file');
  const ptr = alloc(size);
  try {
    if (src.kind === 'bytes') {
      heap().set(new Uint8Array(src.bytes), ptr);
      onProgress({ loaded: size, total: size, phase: 'load' });
    } else {
      const rd = src.blob.stream().getReader();
      let at = 0;
      for (;;) {
        const r = await rd.read();
        if (r.done) break;
        if (at + r.value.length > size) throw new LoadError('the file grew while it was read');
        heap().set(r.value, ptr + at);
        at += r.value.length;
        onProgress({ loaded: at, total: size, phase: 'load' });
      }
      if (at !== size) throw new LoadError(`read ${at} of the file's ${size} bytes`);
    }
    if (opt.sha256) {
      const got = await self.edgelmFetch.sha256(heap().subarray(ptr, ptr + size));
      if (got !== String(opt.sha256).toLowerCase()) throw new LoadError(`sha256 mismatch: expected ${opt.sha256}, got ${got}`);
    }
  } catch (e) {
    M._edgelm_free(ptr);
    throw e;
  }
  return { ptr, size, fromCache: false, log: [], finish: async () => {} };
}

const PRECISION = { auto: 0, f32: 1, q8_0: 2, q4_0: 3, mixed: 4 };  // edgelm_open's codes (c_api.h)

async function doLoad(id, src, opt) {
  const t0 = performance.now();
  let threads = 1;
  const want = opt.threads === undefined ? 'auto' : opt.threads;
  const isolated = self.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined';
  if (want === 'auto') threads = isolated ? Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 1))) : 1;
  else {
    threads = Number(want);
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new LoadError(`threads must be 'auto' or an integer 1..64, not ${want}`);
    if (threads > 1 && !isolated) {
      console.warn(`edgelm: ${threads} threads need a crossOriginIsolated page (COOP/COEP headers); running on 1`);
      threads = 1;
    }
  }
  const context = opt.context === undefined ? 0 : Number(opt.context);
  if (!Number.isInteger(context) || context < 0 || context > 1 << 24) throw new LoadError(`context must be a non-negative integer, not ${opt.context}`);
  const prec = PRECISION[opt.precision === undefined ? 'auto' : opt.precision];
  if (prec === undefined) throw new LoadError(`precision must be auto, f32, q8_0, q4_0 or mixed, not ${opt.precision}`);
  if (opt.simd !== undefined && opt.simd !== 'auto' && opt.simd !== 'simd128') throw new LoadError(`simd must be 'auto' or 'simd128', not ${opt.simd}`);
  await startModule(threads, opt.simd);
  const f = await fill(src, opt, id);
  post({ id, type: 'progress', progress: { loaded: f.size, total: f.size, phase: 'load' } });
  E = M._edgelm_open(f.ptr, f.size, context, threads, prec);  // owns f.ptr from here (freed on failure)
  if (!E) {
    const msg = engineError();
    await f.finish(false);
    throw new LoadError(/^(invalid_argument|out_of_memory):/.test(msg) ? msg : `bad model file: ${msg}`);
  }
  await f.finish(true);
  // one short forward pass now (counted in loadMs), so that the first prompt runs optimised wasm (warmUp: false skips it)
  if (opt.warmUp !== false && M._edgelm_warm_up(E, 16) !== 0) console.warn('edgelm: warm-up failed: ' + engineError());
  const info = JSON.parse(cstr(M._edgelm_info(E)));
  info.build = build;
  info.relaxedSimd = relaxed;
  info.fromCache = f.fromCache;
  const loadMs = performance.now() - t0;
  return { info, loadMs, requests: f.log };
}

// A macrotask boundary without setTimeout's clamping, so queued messages (cancel) are seen.
const chan = new MessageChannel();
let wake = null;
chan.port1.onmessage = () => { const w = wake; wake = null; if (w) w(); };
function yieldNow() { return new Promise((r) => { wake = r; chan.port2.postMessage(0); }); }

async function doGenerate(id, prompt, o, rendered) {
  if (!E) throw new Error('no model loaded');
  const num = (v, d, name, lo, hi) => {
    if (v === undefined || v === null) return d;
    const x = Number(v);
    if (!Number.isFinite(x) || x < lo || x > hi) throw new RangeError(`${name} must be a number in [${lo}, ${hi}], not ${v}`);
    return x;
  };
  const maxTokens = num(o.maxTokens, 256, 'maxTokens', 0, 1 << 24) | 0;
  const temperature = num(o.temperature, 0.8, 'temperature', 0, 1000);
  const topK = num(o.topK, 0, 'topK', 0, 1 << 24) | 0;
  const topP = num(o.topP, 1, 'topP', 0, 1);
  const minP = num(o.minP, 0, 'minP', 0, 1);
  const repeatPenalty = num(o.repeatPenalty, 1, 'repeatPenalty', 1e-6, 1000);
  const seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : num(o.seed, 0, 'seed', 0, 2 ** 53);
  const stops = Array.isArray(o.stop) ? o.stop.map(String).filter((s) => s.length > 0) : (typeof o.stop === 'string' && o.stop ? [o.stop] : []);
  for (const s of stops) if (s.includes('\0')) throw new RangeError('stop strings cannot contain NUL');
  const [pp, pl] = putString(String(prompt));
  const [sp] = putString(stops.join('\0'));
  let rc;
  try {
    rc = M._edgelm_begin(E, pp, pl, maxTokens, temperature, topK, topP, minP, repeatPenalty, Math.floor(seed), sp, stops.length, rendered ? 1 : 0);
  } finally { M._free(pp); M._free(sp); }
  if (rc !== 0) throw new Error(engineError());
  let ended;
  gen = { id, cancelled: false, finished: new Promise((r) => { ended = r; }) };
  try {
    for (;;) {
      if (gen.cancelled) { M._edgelm_cancel(E); break; }
      const s = M._edgelm_step(E);
      if (s < 0) throw new Error(engineError());
      const t = text(M._edgelm_text(E), M._edgelm_text_len(E));
      const tok = M._edgelm_token(E);
      if (t || tok >= 0) post({ id, type: 'piece', text: t, token: tok });
      if (s === 1) break;
      await yieldNow();  // a cancel message gets in here: generation stops within one token
    }
  } finally { gen = null; ended(); }
  return { stats: JSON.parse(cstr(M._edgelm_stats(E))) };
}

function doTokenize(textIn, addSpecial) {
  const [p, n] = putString(String(textIn));
  try {
    const k = M._edgelm_tokenize(E, p, n, addSpecial ? 1 : 0);
    if (k < 0) throw new Error(engineError());
    const ip = M._edgelm_ids(E) >> 2;
    const h = heap();
    return new Int32Array(h.buffer, 0, h.length >> 2).slice(ip, ip + k);
  } finally { M._free(p); }
}

function doDetokenize(ids) {
  const a = Int32Array.from(ids, (x) => {
    if (!Number.isInteger(x)) throw new RangeError(`token ids must be integers, not ${x}`);
    return x;
  });
  const p = M._malloc(Math.max(4, a.length * 4));
  try {
    const h = heap();
    new Int32Array(h.buffer, 0, h.length >> 2).set(a, p >> 2);
    const n = M._edgelm_detokenize(E, p, a.length);
    if (n < 0) throw new Error(engineError());
    return text(M._edgelm_text(E), n);
  } finally { M._free(p); }
}

self.onmessage = async (ev) => {
  const m = ev.data;
  if (m.type === 'cancel') { if (gen && gen.id === m.target) gen.cancelled = true; return; }
  try {
    let result;
    switch (m.type) {
      case 'load': result = await doLoad(m.id, m.source, m.options || {}); break;
      case 'generate': result = await doGenerate(m.id, m.prompt, m.options || {}, false); break;
      case 'chat': {
        if (!E) throw new Error('no model loaded');
        const o = m.options || {};
        const prompt = await renderChat(m.messages, o);
        result = Object.assign(await doGenerate(m.id, prompt, o, true), { prompt });
        break;
      }
      case 'tokenize': result = doTokenize(m.text, m.addSpecial !== false); break;
      case 'detokenize': result = doDetokenize(m.ids); break;
      case 'stats': result = E ? JSON.parse(cstr(M._edgelm_stats(E))) : null; break;
      case 'unload':  // a generation in progress stops first (within a token), then the engine is freed
        if (gen) { gen.cancelled = true; await gen.finished; }
        if (E) { M._edgelm_close(E); E = 0; }
        result = true;
        break;
      case 'clearCache': await clearCache(); result = true; break;
      default: throw new Error('unknown request ' + m.type);
    }
    post({ id: m.id, type: 'result', result });
  } catch (e) {
    post({ id: m.id, type: 'error', error: e && e.message ? e.message : String(e), name: e && e.name });
  }
};

// edgelm - small language models in the browser. ES module; the model runs in a Web Worker (worker.js).
//
//   import { load } from 'edgelm';
//   const lm = await load('https://example.org/model.gguf', { sha256, onProgress: (p) => {}, cache: 'auto' });
//   for await (const piece of lm.generate('Once upon a time', { maxTokens: 64, temperature: 0 })) out += piece;
//   await lm.unload();
//
// See index.d.ts for every option. Errors reject with an Error whose message names the cause: "HTTP 404 ...",
// "sha256 mismatch ...", "bad model file: <the engine's message>", "download of ... interrupted ...".

export const version = '0.1.0';

const WORKER_URL = new URL('./worker.js', import.meta.url);

function absolute(u) {
  const base = typeof document !== 'undefined' ? document.baseURI : (typeof self !== 'undefined' && self.location ? self.location.href : undefined);
  return new URL(String(u), base).href;
}

function sourceOf(src) {
  if (typeof src === 'string' || src instanceof URL) return { kind: 'urls', urls: [absolute(src)] };
  if (Array.isArray(src)) {
    if (src.length === 0) throw new TypeError('edgelm.load: an empty list of URLs');
    return { kind: 'urls', urls: src.map(absolute) };
  }
  if (src instanceof ArrayBuffer) return { kind: 'bytes', bytes: src };
  if (ArrayBuffer.isView(src)) return { kind: 'bytes', bytes: src.buffer.slice(src.byteOffset, src.byteOffset + src.byteLength) };
  if (typeof Blob !== 'undefined' && src instanceof Blob) return { kind: 'blob', blob: src };
  throw new TypeError('edgelm.load: expected a URL, a list of URLs (one split model), an ArrayBuffer or a File/Blob');
}

class Connection {
  constructor(url) {
    this.w = new Worker(url);
    this.next = 1;
    this.calls = new Map();   // id -> {resolve, reject, onMessage}
    this.dead = null;
    this.w.onmessage = (ev) => {
      const m = ev.data;
      const c = this.calls.get(m.id);
      if (!c) return;
      if (m.type === 'result') { this.calls.delete(m.id); c.resolve(m.result); }
      else if (m.type === 'error') { this.calls.delete(m.id); const e = new Error(m.error); c.reject(e); }
      else if (c.onMessage) c.onMessage(m);
    };
    this.w.onerror = (ev) => {
      ev.preventDefault && ev.preventDefault();
      this.fail(new Error('edgelm worker failed: ' + (ev.message || 'script error (is worker.js served next to index.js?)')));
    };
    this.w.onmessageerror = () => this.fail(new Error('edgelm worker: a message could not be read'));
  }
  fail(e) {
    this.dead = e;
    for (const c of this.calls.values()) c.reject(e);
    this.calls.clear();
    try { this.w.terminate(); } catch (_) {}
  }
  call(msg, onMessage, transfer) {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.next++;
    const p = new Promise((resolve, reject) => this.calls.set(id, { resolve, reject, onMessage }));
    this.w.postMessage(Object.assign({ id }, msg), transfer || []);
    p.id = id;
    return p;
  }
  post(msg) { if (!this.dead) this.w.postMessage(msg); }
  terminate() { this.fail(new Error('the model was unloaded')); }
}

class LM {
  constructor(conn, r) {
    this._c = conn;
    this._info = Object.freeze(r.info);
    this._stats = { promptTokens: 0, promptTokPerS: 0, genTokens: 0, genTokPerS: 0, loadMs: r.loadMs, heapBytes: 0 };
    this._queue = Promise.resolve();
    this._unloaded = false;
    this.requests = r.requests;  // the HTTP requests the load made ({url, range, status}), for diagnostics
  }
  get info() { return this._info; }
  get stats() { return Object.assign({}, this._stats); }
  // The token ids the last (or current) generation produced.
  get lastTokens() { return Int32Array.from(this._tokens || []); }

  _alive() { if (this._unloaded) throw new Error('edgelm: the model was unloaded'); }
  _serial(fn) {  // one request after another (the worker runs one generation at a time)
    const p = this._queue.then(fn, fn);
    this._queue = p.then(() => {}, () => {});
    return p;
  }

  // The text the chat template rendered for the last chat() call (what the model was given).
  get lastPrompt() { return this._lastPrompt; }

  // Async iterator of text pieces (whole UTF-8 characters). opts.signal (AbortSignal) ends it at once and stops the
  // worker within one token.
  generate(prompt, opts = {}) {
    this._alive();
    return this._stream({ type: 'generate', prompt: String(prompt) }, opts);
  }

  // A conversation [{role, content}, ...] rendered with the model's own chat template (GGUF tokenizer.chat_template)
  // or the built-in opts.chatTemplate names ('chatml', ...), ready for the assistant's turn; then the same as
  // generate(). Stops on the model's end-of-turn tokens. Calls that extend the same conversation reuse the KV cache
  // of the common prefix: only the new tokens are prefilled (stats.reusedTokens). A model without a template and no
  // chatTemplate option: the iterator rejects with an Error saying so.
  chat(messages, opts = {}) {
    this._alive();
    let msgs;
    try {
      if (!Array.isArray(messages)) throw new TypeError('chat: messages must be an array of {role, content}');
      msgs = messages.map((m, i) => {
        if (!m || typeof m !== 'object') throw new TypeError(`chat: messages[${i}] is not an object {role, content}`);
        return { role: m.role, content: m.content };
      });
    } catch (e) {
      return { [Symbol.asyncIterator]() { return this; }, next: () => Promise.reject(e), return: async () => ({ done: true, value: undefined }) };
    }
    return this._stream({ type: 'chat', messages: msgs }, opts);
  }

  _stream(request, opts) {
    const { signal, ...options } = opts || {};
    const self = this;
    const buf = [];
    const tokens = [];
    self._tokens = tokens;  // lastTokens: this generation's ids
    let wake = null, finished = false, failure = null, started = false, reqId = 0;
    const notify = () => { const w = wake; wake = null; if (w) w(); };
    const onAbort = () => {
      if (finished) return;
      finished = true;
      if (reqId) self._c.post({ type: 'cancel', target: reqId });
      notify();
    };
    const start = () => {
      started = true;
      if (signal && signal.aborted) { finished = true; return; }
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
      const run = () => {
        if (finished) return Promise.resolve();
        let p;
        try {
          p = self._c.call(Object.assign({}, request, { options }), (m) => {
            if (m.type === 'piece' && !finished) {
              if (m.token >= 0) tokens.push(m.token);
              if (m.text) { buf.push(m.text); notify(); }
            }
          });
        } catch (e) {  // options that cannot be sent to the worker (DataCloneError)
          p = Promise.reject(e);
        }
        reqId = p.id;
        return p.then((r) => {
          if (r && r.stats) self._stats = Object.assign({}, r.stats, { loadMs: self._stats.loadMs });
          if (r && typeof r.prompt === 'string') self._lastPrompt = r.prompt;
        }, (e) => { failure = e; }).finally(() => {
          finished = true;
          if (signal) signal.removeEventListener('abort', onAbort);
          notify();
        });
      };
      self._serial(run);
    };
    return {
      [Symbol.asyncIterator]() { return this; },
      async next() {
        if (!started) start();
        for (;;) {
          if (signal && signal.aborted) { onAbort(); return { done: true, value: undefined }; }
          if (buf.length) return { done: false, value: buf.shift() };
          if (failure) { const e = failure; failure = null; throw e; }
          if (finished) return { done: true, value: undefined };
          await new Promise((r) => { wake = r; });
        }
      },
      async return() { onAbort(); return { done: true, value: undefined }; },
    };
  }

  async complete(prompt, opts = {}) {
    let s = '';
    for await (const piece of this.generate(prompt, opts)) s += piece;
    return s;
  }

  tokenize(text, opts = {}) {
    this._alive();
    return this._serial(() => this._c.call({ type: 'tokenize', text: String(text), addSpecial: opts.addSpecial !== false }));
  }
  detokenize(ids) {
    this._alive();
    return this._serial(() => this._c.call({ type: 'detokenize', ids: Array.from(ids) }));
  }

  // Stops any generation, frees the model and ends the worker.
  async unload() {
    if (this._unloaded) return;
    this._unloaded = true;
    try { await Promise.race([this._c.call({ type: 'unload' }), new Promise((r) => setTimeout(r, 2000))]); } catch (_) {}
    this._c.terminate();
  }
}

// Load a model: a URL, several URLs (one model split into parts, concatenated in order), an ArrayBuffer/typed array
// or a File/Blob. Resolves to an LM; rejects with the cause in the message.
export async function load(source, options = {}) {
  const src = sourceOf(source);
  const { onProgress, signal, workerUrl, ...opts } = options || {};
  if (opts.cache !== undefined && opts.cache !== 'auto' && opts.cache !== 'none') throw new TypeError("edgelm.load: cache must be 'auto' or 'none'");
  const conn = new Connection(workerUrl || WORKER_URL);
  const onAbort = () => conn.fail(new Error('load aborted'));
  if (signal) {
    if (signal.aborted) { conn.terminate(); throw new Error('load aborted'); }
    signal.addEventListener('abort', onAbort, { once: true });
  }
  try {
    const r = await conn.call({ type: 'load', source: src, options: opts }, (m) => {
      if (m.type === 'progress' && onProgress) { try { onProgress(m.progress); } catch (e) { console.error(e); } }
    });
    return new LM(conn, r);
  } catch (e) {
    conn.terminate();
    throw e;
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort);
  }
}

// Delete every model cached by this origin.
export async function clearCache() {
  const conn = new Connection(WORKER_URL);
  try { await conn.call({ type: 'clearCache' }); } finally { conn.terminate(); }
}

export default { load, clearCache, version };

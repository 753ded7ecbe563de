// edgelm/backends/emscripten/fetch.hpp - download a model (one URL, or several = one model split into parts,
// concatenated in order) straight into a heap_storage, from C++ in an Emscripten build, without edgelm's JS
// package. Asynchronous with callbacks (the browser's fetch() and its stream reader underneath): no ASYNCIFY,
// no JSPI, the calling code returns to the event loop and the callbacks run later on the same thread.
//
//   #define EDGELM_FETCH_IMPLEMENTATION   // in exactly one translation unit (it defines the JS glue)
//   #include <edgelm/backends/emscripten/fetch.hpp>
//   edgelm::web::fetch_model({"models/stories260K.gguf"}, {},
//       [](std::uint64_t loaded, std::uint64_t total) { show(loaded, total); },
//       [](edgelm::result<edgelm::web::heap_storage> r) {
//         if (!r) { report(r.error().message()); return; }      // io_error: "HTTP 404 Not Found for ..."
//         auto e = edgelm::web::engine::open(std::move(*r));   // or edgelm::load<P, K>(std::move(*r))
//       });
//
// What it does: the responses' headers first (all parts in parallel: their Content-Length gives the size, so
// the buffer is allocated once, at its final size); then each body is streamed into its place in the buffer.
// A body that ends early or a connection that fails is resumed with a Range request (If-Range: the ETag) from
// the byte where it stopped, at most `retries` times; a server that answers a Range request with 200 starts
// that part over. A response with no data for timeout_ms fails. HTTP errors, network failures, truncated
// bodies and a response without Content-Length (read whole, then copied) are all handled: every failure
// arrives as an edgelm::error (io_error) whose message names the URL and the cause.
//
// Verified cache (fetch_options::cache, on by default where the browser has IndexedDB): IndexedDB database
// 'edgelm-cpp-models' (version 1), stores files {key, size, sha256, chunkSize, chunks, time} and chunks {key, i,
// data: ArrayBuffer of chunkSize bytes}; key = the URLs joined by ' ' + '|' + the sha256 option. An entry is
// written in one transaction (all chunks and its file record, or nothing) after the download, and used only when
// the bytes read back into the heap hash to its sha256 (and to fetch_options::sha256 when given); anything else is
// deleted (with a warning) and downloaded again. Before writing, navigator.storage.estimate() must leave room for
// the model: a full quota, a failed write or a missing IndexedDB only skip the cache with a warning, never fail
// the load. With fetch_options::sha256 the downloaded bytes must hash to it: a mismatch fails (sha256 mismatch)
// and nothing is cached. Hashing is WebCrypto's (a secure context: https or localhost). Progress reports say
// whether bytes come from the network or the cache. Single-thread builds (the glue uses HEAPU8 directly).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <edgelm/core/result.hpp>
#include <edgelm/formats/detect.hpp>

#include "heap_storage.hpp"

namespace edgelm::web {

enum class fetch_phase : int { download = 0, cache = 1 };  // where the bytes being reported come from
enum class cache_mode : int { automatic = 0, none = 1 };

struct fetch_options {
  unsigned retries = 3;         // resumes after an interrupted body
  unsigned timeout_ms = 30000;  // no response / no data for this long: a failure
  std::string sha256;           // 64 hex digits: the bytes must hash to this (also the cache key's second half)
  cache_mode cache = cache_mode::automatic;
  std::function<void(const std::string&)> on_warning;  // the cache skipped or an entry dropped, with the reason
  // Whether downloaded bytes may be cached (null: they are a model file by detect_format, so an HTML error page
  // served with 200 is never kept).
  std::function<bool(std::span<const std::byte>)> accept;
};
using fetch_progress_fn = std::function<void(std::uint64_t loaded, std::uint64_t total, fetch_phase phase)>;
using fetch_done_fn = std::function<void(result<heap_storage>)>;

namespace detail {
struct fetch_job {
  heap_storage buf;
  fetch_progress_fn progress;
  fetch_done_fn done;
  std::function<void(const std::string&)> warn;
  std::function<bool(std::span<const std::byte>)> accept;
};
}  // namespace detail

// Starts the download (or the read from the cache) and returns at once; `done` is called exactly once.
void fetch_model(std::vector<std::string> urls, fetch_options o, fetch_progress_fn progress, fetch_done_fn done);

}  // namespace edgelm::web

#if defined(EDGELM_FETCH_IMPLEMENTATION) && defined(__EMSCRIPTEN__)
#include <emscripten/em_js.h>
#include <emscripten/emscripten.h>

extern "C" {
EMSCRIPTEN_KEEPALIVE void* edgelm_fetch_alloc(edgelm::web::detail::fetch_job* job, double total) {
  auto r = edgelm::web::heap_storage::allocate(static_cast<std::size_t>(total));
  if (!r) return nullptr;
  job->buf = std::move(*r);
  return job->buf.data();
}
EMSCRIPTEN_KEEPALIVE void edgelm_fetch_progress(edgelm::web::detail::fetch_job* job, double loaded, double total, int phase) {
  if (job->progress) job->progress(static_cast<std::uint64_t>(loaded), static_cast<std::uint64_t>(total), static_cast<edgelm::web::fetch_phase>(phase));
}
EMSCRIPTEN_KEEPALIVE int edgelm_fetch_accept(edgelm::web::detail::fetch_job* job) {
  const auto b = job->buf.bytes();
  return (job->accept ? job->accept(b) : static_cast<bool>(edgelm::detect_format(b))) ? 1 : 0;
}
EMSCRIPTEN_KEEPALIVE void edgelm_fetch_warn(edgelm::web::detail::fetch_job* job, const char* msg) {
  if (job->warn) job->warn(msg ? msg : "");
}
EMSCRIPTEN_KEEPALIVE void edgelm_fetch_done(edgelm::web::detail::fetch_job* job, int ok, const char* msg) {
  auto done = std::move(job->done);
  edgelm::result<edgelm::web::heap_storage> r = ok ? edgelm::result<edgelm::web::heap_storage>(std::move(job->buf))
                                                   : edgelm::result<edgelm::web::heap_storage>(edgelm::make_error(edgelm::errc::io_error, msg ? msg : "download failed"));
  delete job;
  if (done) done(std::move(r));
}

// The JS side. (EM_JS bodies are one line once stringified: no // comments inside.)
EM_JS(void, edgelm_fetch_start_js, (void* job, const char* urls_c, int retries, int timeout_ms, const char* sha_c, int use_cache), {
  const urls = UTF8ToString(urls_c).split('\n').filter((u) => u.length > 0);
  const want = UTF8ToString(sha_c);
  const withStr = (msg, f) => {
    const b = new TextEncoder().encode(msg);
    const p = _malloc(b.length + 1);
    HEAPU8.set(b, p); HEAPU8[p + b.length] = 0;
    f(p);
    _free(p);
  };
  const finish = (ok, msg) => {
    if (ok) { _edgelm_fetch_done(job, 1, 0); return; }
    withStr(msg, (p) => _edgelm_fetch_done(job, 0, p));
  };
  const warn = (msg) => withStr(msg, (p) => _edgelm_fetch_warn(job, p));
  const hex = (buf) => Array.from(new Uint8Array(buf), (x) => x.toString(16).padStart(2, '0')).join('');
  const sha256 = async (ptr, n) => {
    if (!(globalThis.crypto && crypto.subtle)) throw new Error('sha256 needs crypto.subtle (a secure context: https or localhost)');
    return hex(await crypto.subtle.digest('SHA-256', HEAPU8.subarray(ptr, ptr + n)));
  };
  const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  const txDone = (tx) => new Promise((res, rej) => { tx.oncomplete = () => res(); tx.onerror = () => rej(tx.error || new Error('transaction failed')); tx.onabort = () => rej(tx.error || new Error('transaction aborted')); });
  const CHUNK = 8 * 1024 * 1024;
  const key = urls.join(' ') + '|' + want;
  const openDb = () => new Promise((res, rej) => {
    const r = indexedDB.open('edgelm-cpp-models', 1);
    r.onupgradeneeded = () => { const d = r.result; d.createObjectStore('files', { keyPath: 'key' }); d.createObjectStore('chunks', { keyPath: ['key', 'i'] }); };
    r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); r.onblocked = () => rej(new Error('IndexedDB open blocked'));
  });
  const drop = async (db) => {
    const tx = db.transaction(['files', 'chunks'], 'readwrite');
    tx.objectStore('files').delete(key);
    tx.objectStore('chunks').delete(IDBKeyRange.bound([key, 0], [key, Infinity]));
    await txDone(tx);
  };
  const fromCache = async (db) => {
    const rec = await req(db.transaction('files').objectStore('files').get(key));
    if (!rec) return false;
    const bad = async (why) => { warn('cache: dropped the entry for ' + key + ' (' + why + '), downloading again'); await drop(db); return false; };
    if (!(rec.size > 0) || rec.chunkSize !== CHUNK || rec.chunks !== Math.ceil(rec.size / CHUNK) || !/^[0-9a-f]{64}$/.test(rec.sha256) || (want && rec.sha256 !== want)) return bad('malformed record');
    const ptr = _edgelm_fetch_alloc(job, rec.size);
    if (!ptr) throw new Error('out of memory: cannot allocate ' + rec.size + ' bytes in the wasm heap');
    _edgelm_fetch_progress(job, 0, rec.size, 1);
    for (let i = 0; i < rec.chunks; i++) {
      const c = await req(db.transaction('chunks').objectStore('chunks').get([key, i]));
      const n = Math.min(CHUNK, rec.size - i * CHUNK);
      if (!c || !(c.data instanceof ArrayBuffer) || c.data.byteLength !== n) return bad('chunk ' + i + ' missing or cut');
      HEAPU8.set(new Uint8Array(c.data), ptr + i * CHUNK);
      _edgelm_fetch_progress(job, i * CHUNK + n, rec.size, 1);
    }
    const got = await sha256(ptr, rec.size);
    if (got !== rec.sha256) return bad('corrupt: sha256 ' + got + ' instead of ' + rec.sha256);
    return true;
  };
  const toCache = async (db, ptr, size, sha) => {
    if (navigator.storage && navigator.storage.estimate) {
      const e = await navigator.storage.estimate();
      if (typeof e.quota === 'number' && typeof e.usage === 'number' && e.quota - e.usage < size + (size >> 4) + (1 << 20)) {
        warn('cache: quota full (' + (e.quota - e.usage) + ' bytes free, ' + size + ' needed): not caching ' + key);
        return;
      }
    }
    const tx = db.transaction(['files', 'chunks'], 'readwrite');
    const n = Math.ceil(size / CHUNK);
    for (let i = 0; i < n; i++) tx.objectStore('chunks').put({ key: key, i: i, data: HEAPU8.slice(ptr + i * CHUNK, ptr + Math.min(size, (i + 1) * CHUNK)).buffer });
    tx.objectStore('files').put({ key: key, size: size, sha256: sha, chunkSize: CHUNK, chunks: n, time: Date.now() });
    await txDone(tx);
  };
  const open = async (part, from) => {
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), timeout_ms);
    const headers = {};
    if (from > 0) { headers['Range'] = 'bytes=' + from + '-'; if (part.etag) headers['If-Range'] = part.etag; }
    let r;
    try { r = await fetch(part.url, { headers: headers, signal: ctl.signal, cache: 'no-store' }); }
    catch (e) { throw new Error(ctl.signal.aborted ? 'no response from ' + part.url + ' within ' + timeout_ms + ' ms' : 'network error fetching ' + part.url + ': ' + (e && e.message ? e.message : e)); }
    finally { clearTimeout(t); }
    if (r.status === 206 && from > 0) {
      const cr = (r.headers.get('Content-Range') || "").trim();
      const sp = cr.startsWith('bytes ') ? cr.slice(6).split('/') : [];
      const first = sp.length === 2 ? Number(sp[0].split('-')[0]) : NaN;
      if (first !== from) { ctl.abort(); return open(part, 0); }
      if (part.size >= 0 && Number(sp[1]) !== part.size) throw new Error(part.url + ' changed size during the download');
      part.start = from;
    } else if (r.ok && r.status !== 206) {
      const len = r.headers.get('Content-Length'), enc = r.headers.get('Content-Encoding');
      const n = len !== null && (!enc || enc === 'identity') ? Number(len) : -1;
      if (part.size >= 0 && n >= 0 && n !== part.size) throw new Error(part.url + ' changed size during the download');
      if (part.size < 0) part.size = n;
      part.start = 0;
    } else {
      throw new Error('HTTP ' + r.status + (r.statusText ? ' ' + r.statusText : "") + ' for ' + part.url);
    }
    part.etag = r.headers.get('ETag') || "";
    part.res = r; part.ctl = ctl;
  };
  (async () => {
    if (urls.length === 0) throw new Error('no URL');
    let db = null;
    if (use_cache) {
      try {
        if (typeof indexedDB === 'undefined') throw new Error('no IndexedDB here');
        db = await openDb();
        if (await fromCache(db)) { db.close(); finish(true); return; }
      } catch (e) {
        warn('cache: not used (' + (e && e.message ? e.message : e) + ')');
        if (db) { try { db.close(); } catch (_) {} }
        db = null;
      }
    }
    const parts = urls.map((u) => ({ url: u, size: -1, start: 0, etag: "", res: null, ctl: null, whole: null }));
    await Promise.all(parts.map((p) => open(p, 0)));
    for (const p of parts) {
      if (p.size >= 0) continue;
      const b = new Uint8Array(await p.res.arrayBuffer());
      p.whole = b; p.size = b.length;
    }
    const total = parts.reduce((s, p) => s + p.size, 0);
    if (total === 0) throw new Error(urls.join(', ') + ': empty file');
    const ptr = _edgelm_fetch_alloc(job, total);
    if (!ptr) throw new Error('out of memory: cannot allocate ' + total + ' bytes in the wasm heap');
    let loaded = 0, off = ptr;
    _edgelm_fetch_progress(job, 0, total, 0);
    for (const p of parts) {
      if (p.whole) { HEAPU8.set(p.whole, off); loaded += p.size; off += p.size; p.whole = null; _edgelm_fetch_progress(job, loaded, total, 0); continue; }
      let pos = p.start, left = retries;
      for (;;) {
        const rd = p.res.body.getReader();
        let why = 'the body ended early';
        try {
          for (;;) {
            let timer;
            const stall = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('no data for ' + timeout_ms + ' ms')), timeout_ms); });
            let c;
            try { c = await Promise.race([rd.read(), stall]); } finally { clearTimeout(timer); }
            if (c.done) break;
            if (pos + c.value.length > p.size) { const e = new Error(p.url + ' sent more than its ' + p.size + ' bytes'); e.fatal = true; throw e; }
            HEAPU8.set(c.value, off + pos);
            pos += c.value.length; loaded += c.value.length;
            _edgelm_fetch_progress(job, loaded, total, 0);
          }
        } catch (e) {
          try { p.ctl.abort(); } catch (_) {}
          if (e && e.fatal) throw e;
          why = e && e.message ? e.message : String(e);
        }
        if (pos === p.size) break;
        if (left-- <= 0) throw new Error('download of ' + p.url + ' interrupted after ' + pos + ' of ' + p.size + ' bytes (' + why + ')');
        await open(p, pos);
        if (p.start !== pos) { loaded -= pos - p.start; pos = p.start; }
      }
      off += p.size;
    }
    if (want || db) {
      let got = "";
      try { got = await sha256(ptr, total); } catch (e) { if (db) db.close(); if (want) throw e; warn('cache: not caching ' + key + ' (' + e.message + ')'); db = null; }
      if (want && got !== want) { if (db) db.close(); throw new Error('sha256 mismatch for ' + urls.join(' + ') + ': expected ' + want + ', got ' + got); }
      if (db) {
        if (!_edgelm_fetch_accept(job)) warn('cache: not caching ' + key + ' (not a model file)');
        else try { await toCache(db, ptr, total, got); } catch (e) { warn('cache: not caching ' + key + ' (' + (e && e.message ? e.message : e) + ')'); }
        db.close();
      }
    }
    finish(true);
  })().catch((e) => finish(false, e && e.message ? e.message : String(e)));
});
}  // extern "C"

namespace edgelm::web {
inline void fetch_model(std::vector<std::string> urls, fetch_options o, fetch_progress_fn progress, fetch_done_fn done) {
  std::string joined;
  for (const auto& u : urls) {
    if (u.find('\n') != std::string::npos || u.empty()) {
      if (done) done(make_error(errc::invalid_argument, "a URL is empty or holds a line break"));
      return;
    }
    joined += u;
    joined += '\n';
  }
  std::string sha = o.sha256;
  for (char& c : sha) c = static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
  bool hex = sha.size() == 64;
  for (char c : sha) hex &= (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  if (!sha.empty() && !hex) {
    if (done) done(make_error(errc::invalid_argument, "sha256 must be 64 hexadecimal digits, not '" + o.sha256 + "'"));
    return;
  }
  auto* job = new detail::fetch_job{heap_storage{}, std::move(progress), std::move(done), std::move(o.on_warning), std::move(o.accept)};
  edgelm_fetch_start_js(job, joined.c_str(), static_cast<int>(o.retries), static_cast<int>(o.timeout_ms == 0 ? 30000 : o.timeout_ms), sha.c_str(),
                        o.cache == cache_mode::automatic ? 1 : 0);
}
}  // namespace edgelm::web
#endif

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
// arrives as an edgelm::error (io_error) whose message names the URL and the cause. No cache (the JS package's
// worker has the verified IndexedDB cache). Single-thread builds (the glue uses HEAPU8 directly).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <edgelm/core/result.hpp>

#include "heap_storage.hpp"

namespace edgelm::web {

struct fetch_options {
  unsigned retries = 3;         // resumes after an interrupted body
  unsigned timeout_ms = 30000;  // no response / no data for this long: a failure
};
using fetch_progress_fn = std::function<void(std::uint64_t loaded, std::uint64_t total)>;
using fetch_done_fn = std::function<void(result<heap_storage>)>;

namespace detail {
struct fetch_job {
  heap_storage buf;
  fetch_progress_fn progress;
  fetch_done_fn done;
};
}  // namespace detail

// Starts the download and returns at once; `done` is called exactly once.
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
EMSCRIPTEN_KEEPALIVE void edgelm_fetch_progress(edgelm::web::detail::fetch_job* job, double loaded, double total) {
  if (job->progress) job->progress(static_cast<std::uint64_t>(loaded), static_cast<std::uint64_t>(total));
}
EMSCRIPTEN_KEEPALIVE void edgelm_fetch_done(edgelm::web::detail::fetch_job* job, int ok, const char* msg) {
  auto done = std::move(job->done);
  edgelm::result<edgelm::web::heap_storage> r = ok ? edgelm::result<edgelm::web::heap_storage>(std::move(job->buf))
                                                   : edgelm::result<edgelm::web::heap_storage>(edgelm::make_error(edgelm::errc::io_error, msg ? msg : "download failed"));
  delete job;
  if (done) done(std::move(r));
}

// The JS side. (EM_JS bodies are one line once stringified: no // comments inside.)
EM_JS(void, edgelm_fetch_start_js, (void* job, const char* urls_c, int retries, int timeout_ms), {
  const urls = UTF8ToString(urls_c).split('\n').filter((u) => u.length > 0);
  const finish = (ok, msg) => {
    if (ok) { _edgelm_fetch_done(job, 1, 0); return; }
    const b = new TextEncoder().encode(msg);
    const p = _malloc(b.length + 1);
    HEAPU8.set(b, p); HEAPU8[p + b.length] = 0;
    _edgelm_fetch_done(job, 0, p);
    _free(p);
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
    const parts = urls.map((u) => ({ url: u, size: -1, start: 0, etag: "", res: null, ctl: null, whole: null }));
    if (parts.length === 0) throw new Error('no URL');
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
    _edgelm_fetch_progress(job, 0, total);
    for (const p of parts) {
      if (p.whole) { HEAPU8.set(p.whole, off); loaded += p.size; off += p.size; p.whole = null; _edgelm_fetch_progress(job, loaded, total); continue; }
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
            _edgelm_fetch_progress(job, loaded, total);
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
  auto* job = new detail::fetch_job{heap_storage{}, std::move(progress), std::move(done)};
  edgelm_fetch_start_js(job, joined.c_str(), static_cast<int>(o.retries), static_cast<int>(o.timeout_ms == 0 ? 30000 : o.timeout_ms));
}
}  // namespace edgelm::web
#endif

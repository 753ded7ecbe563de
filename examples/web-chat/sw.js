// examples/web-chat/sw.js - the app shell offline: cache-first for the page, its script and style and the edgelm
// package; the model itself is not handled here (edgelm keeps it in its verified IndexedDB cache, and a cached
// model needs no request at all). A new version of this file (CACHE name) replaces the old shell.
const CACHE = 'edgelm-web-chat-v3';
const SHELL = ['./', 'index.html', 'app.js', 'style.css', '/pkg/edgelm.mjs', '/pkg/worker.js', '/pkg/cache.js',
               '/pkg/edgelm-st.js', '/pkg/edgelm-st.wasm', '/pkg/edgelm-mt.js', '/pkg/edgelm-mt.wasm', '/pkg/edgelm-mt.worker.js',
               '/pkg/edgelm-text.js', '/pkg/edgelm-text.wasm', '/pkg/edgelm-st-relaxed.js', '/pkg/edgelm-st-relaxed.wasm',
               '/pkg/edgelm-mt-relaxed.js', '/pkg/edgelm-mt-relaxed.wasm', '/pkg/edgelm-mt-relaxed.worker.js'];

self.addEventListener('install', (ev) => {
  ev.waitUntil((async () => {
    const c = await caches.open(CACHE);
    // one by one, so that a file missing from a build (e.g. no mt build) does not stop the others
    await Promise.all(SHELL.map((u) => c.add(new Request(u, { cache: 'reload' })).catch(() => {})));
    await self.skipWaiting();
  })());
});
self.addEventListener('activate', (ev) => {
  ev.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});
self.addEventListener('fetch', (ev) => {
  const u = new URL(ev.request.url);
  if (ev.request.method !== 'GET' || u.origin !== location.origin || u.pathname.startsWith('/models/')) return;
  ev.respondWith((async () => {
    const c = await caches.open(CACHE);
    const hit = await c.match(ev.request, { ignoreSearch: true });
    // network first while online (fresh shell), the cached copy when offline
    try {
      const r = await fetch(ev.request);
      if (r.ok) c.put(ev.request, r.clone()).catch(() => {});
      return r;
    } catch (e) {
      if (hit) return hit;
      throw e;
    }
  })());
});

// edgelm/cache.js - model bytes from the network or the IndexedDB cache, straight into a buffer of the wasm heap.
// A classic script, loaded into the Worker by importScripts (it defines self.edgelmFetch). No DOM use.
//
// IndexedDB 'edgelm-models' (version 1):
//   files  {key, url, sha256, size, chunkSize, have, complete, etag, lastModified, time}   key = url + '|' + sha256 option
//   chunks {key, i, data: ArrayBuffer}   chunk i holds bytes [i * chunkSize, (i + 1) * chunkSize) of the file
// A file record with complete: false is a download that stopped after `have` bytes: never used as a model, only
// to resume the download with a Range request. A complete record is used only after the bytes read back hash
// to its sha256 (and to the caller's sha256, when one was given); anything else is deleted and fetched again.
(function () {
  'use strict';
  const DB_NAME = 'edgelm-models';
  const CHUNK = 8 * 1024 * 1024;

  class LoadError extends Error {
    constructor(message) { super(message); this.name = 'EdgelmLoadError'; }
  }

  function hex(buf) {
    const b = new Uint8Array(buf);
    let s = '';
    for (let i = 0; i < b.length; i++) s += b[i].toString(16).padStart(2, '0');
    return s;
  }

  // SHA-256 of a region of the heap (crypto.subtle copies the bytes it hashes; a shared heap, from the threaded
  // build, is copied first because WebCrypto does not take views of a SharedArrayBuffer).
  async function sha256(view) {
    if (!(self.crypto && crypto.subtle)) throw new LoadError('sha256 needs crypto.subtle (a secure context: https or localhost)');
    const v = (typeof SharedArrayBuffer !== 'undefined' && view.buffer instanceof SharedArrayBuffer) ? view.slice() : view;
    return hex(await crypto.subtle.digest('SHA-256', v));
  }

  // ---------------------------------------------------------------------------------------------------------
  // IndexedDB, promisified
  function req(r) {
    return new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  }
  function done(tx) {
    return new Promise((res, rej) => {
      tx.oncomplete = () => res();
      tx.onerror = () => rej(tx.error || new Error('IndexedDB transaction failed'));
      tx.onabort = () => rej(tx.error || new Error('IndexedDB transaction aborted'));
    });
  }
  async function openDb() {
    if (typeof indexedDB === 'undefined') return null;
    const r = indexedDB.open(DB_NAME, 1);
    r.onupgradeneeded = () => {
      const db = r.result;
      if (!db.objectStoreNames.contains('files')) db.createObjectStore('files', { keyPath: 'key' });
      if (!db.objectStoreNames.contains('chunks')) db.createObjectStore('chunks', { keyPath: ['key', 'i'] });
    };
    return await new Promise((res, rej) => {
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
      r.onblocked = () => rej(new Error('IndexedDB open blocked'));
    });
  }
  async function getFile(db, key) {
    const tx = db.transaction('files', 'readonly');
    return (await req(tx.objectStore('files').get(key))) || null;
  }
  async function getChunk(db, key, i) {
    const tx = db.transaction('chunks', 'readonly');
    return (await req(tx.objectStore('chunks').get([key, i]))) || null;
  }
  async function deleteEntry(db, key) {
    const tx = db.transaction(['files', 'chunks'], 'readwrite');
    tx.objectStore('files').delete(key);
    tx.objectStore('chunks').delete(IDBKeyRange.bound([key, 0], [key, Infinity]));
    await done(tx);
  }
  // One chunk and the file record that now counts it, in one transaction (atomic).
  async function putChunk(db, rec, i, data) {
    const tx = db.transaction(['files', 'chunks'], 'readwrite');
    tx.objectStore('chunks').put({ key: rec.key, i, data });
    tx.objectStore('files').put(rec);
    await done(tx);
  }
  async function putFile(db, rec) {
    const tx = db.transaction('files', 'readwrite');
    tx.objectStore('files').put(rec);
    await done(tx);
  }

  async function freeBytes() {
    try {
      if (!(self.navigator && navigator.storage && navigator.storage.estimate)) return Infinity;
      const e = await navigator.storage.estimate();
      if (typeof e.quota !== 'number') return Infinity;
      return e.quota - (e.usage || 0);
    } catch (_) { return Infinity; }
  }

  // ---------------------------------------------------------------------------------------------------------
  // HTTP
  function httpError(url, r) {
    return new LoadError(`HTTP ${r.status}${r.statusText ? ' ' + r.statusText : ''} for ${url}`);
  }
  // fetch with a deadline for the response headers; network failures name the URL.
  async function fetchWith(url, headers, ctl, timeoutMs, signal) {
    const t = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      return await fetch(url, { headers, signal: ctl.signal, cache: 'no-store' });
    } catch (e) {
      if (signal && signal.aborted) throw new LoadError('load aborted');
      if (ctl.signal.aborted) throw new LoadError(`no response from ${url} within ${timeoutMs} ms`);
      throw new LoadError(`network error fetching ${url}: ${e && e.message ? e.message : e}`);
    } finally { clearTimeout(t); }
  }
  function totalFromContentRange(v) {  // "bytes 100-199/1000"
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((v || '').trim());
    return m ? { start: +m[1], end: +m[2], total: m[3] === '*' ? -1 : +m[3] } : null;
  }

  // ---------------------------------------------------------------------------------------------------------
  // One part (one URL) of a model.
  class Part {
    constructor(url, key) {
      this.url = url; this.key = key;
      this.rec = null;          // its files record (cached or partial), when any
      this.size = -1;
      this.response = null;     // an open response whose body starts at this.bodyStart
      this.bodyStart = 0;
      this.offset = 0;          // where the part starts in the heap buffer
      this.fromCache = false;
      this.sha = '';
      this.validator = { etag: '', lastModified: '' };
      this.jsChunks = null;     // a body read before the size was known (no Content-Length)
    }
  }

  // Fetch (or resume) a part's response from byte `from`; sets part.response / bodyStart / size.
  async function openResponse(part, from, ctx) {
    const headers = {};
    if (from > 0) {
      headers.Range = `bytes=${from}-`;
      const v = part.validator.etag || part.validator.lastModified;
      if (v) headers['If-Range'] = v;
    }
    const ctl = new AbortController();
    if (ctx.signal) ctx.signal.addEventListener('abort', () => ctl.abort(), { once: true });
    const r = await fetchWith(part.url, headers, ctl, ctx.timeoutMs, ctx.signal);
    ctx.log.push({ url: part.url, range: headers.Range || '', status: r.status });
    if (r.status === 206 && from > 0) {
      const cr = totalFromContentRange(r.headers.get('Content-Range'));
      if (!cr || cr.start !== from) {  // not the range asked for: start again from 0
        try { ctl.abort(); } catch (_) {}
        return openResponse(part, 0, ctx);
      }
      if (cr.total >= 0) {
        if (part.size >= 0 && cr.total !== part.size) throw new LoadError(`${part.url} changed size during the download (${part.size} -> ${cr.total} bytes)`);
        part.size = cr.total;
      }
      part.bodyStart = from;
    } else if (r.ok && r.status !== 206) {
      const len = r.headers.get('Content-Length');
      const enc = r.headers.get('Content-Encoding');
      const n = len !== null && (!enc || enc === 'identity') ? Number(len) : -1;
      if (n >= 0 && part.size >= 0 && n !== part.size && from === 0 && part.rec && !part.rec.complete) {
        part.rec = null;  // the partial download is of another version of the file
      }
      part.size = n >= 0 ? n : part.size;
      part.bodyStart = 0;
    } else {
      throw httpError(part.url, r);
    }
    part.validator = { etag: r.headers.get('ETag') || '', lastModified: r.headers.get('Last-Modified') || '' };
    part.response = r;
    part.ctl = ctl;
  }

  // Read a response body into the heap at part.offset + position, resuming with Range requests when the body
  // ends early or the connection fails (at most ctx.retries times), persisting whole chunks as they complete.
  async function streamPart(part, ctx, heap) {
    let pos = part.bodyStart;
    let retries = ctx.retries;
    for (;;) {
      const reader = part.response.body.getReader();
      let failure = null;
      try {
        for (;;) {
          let timer;
          const stall = new Promise((_, rej) => { timer = setTimeout(() => rej(new LoadError(`download of ${part.url} stalled: no data for ${ctx.timeoutMs} ms`)), ctx.timeoutMs); });
          let r;
          try { r = await Promise.race([reader.read(), stall]); } finally { clearTimeout(timer); }
          if (r.done) break;
          const v = r.value;
          if (pos + v.length > part.size) { const e = new LoadError(`${part.url} sent more than its ${part.size} bytes`); e.fatal = true; throw e; }
          heap().set(v, part.offset + pos);
          const before = pos;
          pos += v.length;
          ctx.progress(v.length, 'download');
          if (ctx.persist) await persistUpTo(part, ctx, heap, before, pos, false);
        }
      } catch (e) {
        try { part.ctl.abort(); } catch (_) {}
        if (ctx.signal && ctx.signal.aborted) throw new LoadError('load aborted');
        if (e && e.fatal) throw e;
        failure = e;
      }
      if (pos === part.size) return;
      const why = failure ? (failure.message || String(failure)) : 'the body ended early';
      if (retries-- <= 0) {
        throw new LoadError(`download of ${part.url} interrupted after ${pos} of ${part.size} bytes (${why})` +
                            (ctx.persist ? '; the next load resumes from the cached part' : ''));
      }
      await openResponse(part, pos, ctx);  // resume where it stopped
      if (part.bodyStart !== pos) {        // the server ignored the range: from the start again
        ctx.progress(-(pos - part.bodyStart), 'download');
        pos = part.bodyStart;
      }
    }
  }

  // Store chunks of the part that are complete in [0, pos) and not yet stored; at the end, the whole part.
  async function persistUpTo(part, ctx, heap, before, pos, final) {
    const rec = part.rec;
    if (!rec || !ctx.persist) return;
    while (rec.have + ctx.chunk <= pos || (final && rec.have < pos)) {
      const end = Math.min(rec.have + ctx.chunk, part.size);
      if (end > pos) break;
      const data = heap().slice(part.offset + rec.have, part.offset + end).buffer;
      const next = Object.assign({}, rec, { have: end, etag: part.validator.etag, lastModified: part.validator.lastModified });
      try {
        await putChunk(ctx.db, next, rec.have / ctx.chunk, data);
      } catch (e) {
        ctx.warn(`edgelm: caching ${part.url} stopped (${e && e.name === 'QuotaExceededError' ? 'storage quota full' : e && e.message}); loading from the network only`);
        ctx.persist = false;
        try { await deleteEntry(ctx.db, part.key); } catch (_) {}
        return;
      }
      part.rec = next;
      Object.assign(rec, next);
    }
  }

  // Read a cached (complete or partial) part's chunks [0, upto) into the heap. False when a chunk is missing.
  async function readCached(part, ctx, heap, upto) {
    for (let at = 0, i = 0; at < upto; at += ctx.chunk, i++) {
      const c = await getChunk(ctx.db, part.key, i);
      const want = Math.min(ctx.chunk, upto - at);
      if (!c || !c.data || c.data.byteLength !== want) return false;
      heap().set(new Uint8Array(c.data), part.offset + at);
      ctx.progress(want, part.rec.complete ? 'cache' : 'download');
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------------------
  // The model: parts fetched/cached into one heap buffer. opts: {sha256, cache, retries, timeoutMs, signal, onProgress, warn}
  // alloc(total) -> ptr (throws on failure); heap() -> the current Uint8Array over the wasm memory.
  // Returns {ptr, size, fromCache, log, finish(ok)}: call finish(true) once the engine accepted the bytes (it
  // stores the parts in the cache), finish(false) when it did not (nothing is kept).
  async function fetchModel(urls, opts, alloc, free, heap) {
    const want = opts.sha256 ? String(opts.sha256).toLowerCase() : '';
    if (want && !/^[0-9a-f]{64}$/.test(want)) throw new LoadError(`sha256 option must be 64 hex digits, not '${opts.sha256}'`);
    const ctx = {
      chunk: opts.chunkBytes > 0 ? Math.max(65536, opts.chunkBytes | 0) : CHUNK,
      retries: opts.retries === undefined ? 3 : Math.max(0, opts.retries | 0),
      timeoutMs: opts.timeoutMs > 0 ? opts.timeoutMs : 30000,
      signal: opts.signal || null,
      log: [],
      db: null,
      persist: false,
      warn: opts.warn || ((m) => console.warn(m)),
      loaded: 0, total: 0,
      progress(n, phase) {
        this.loaded += n;
        if (opts.onProgress) opts.onProgress({ loaded: this.loaded, total: this.total, phase });
      },
    };
    if (opts.cache !== 'none') {
      try { ctx.db = await openDb(); } catch (e) { ctx.warn(`edgelm: IndexedDB unavailable (${e && e.message}); loading from the network only`); }
    }
    for (let attempt = 0; ; attempt++) {
      const parts = urls.map((u) => new Part(u, u + '|' + want));
      // 1. cache records, then the responses of what is not cached (in parallel: their sizes come first)
      if (ctx.db) {
        for (const p of parts) {
          try { p.rec = await getFile(ctx.db, p.key); } catch (_) { p.rec = null; }
          if (p.rec && (typeof p.rec.size !== 'number' || p.rec.chunkSize !== ctx.chunk)) { await deleteEntry(ctx.db, p.key).catch(() => {}); p.rec = null; }
          if (p.rec) {
            p.size = p.rec.size;
            p.validator = { etag: p.rec.etag || '', lastModified: p.rec.lastModified || '' };
            p.fromCache = !!p.rec.complete;
            if (!p.rec.complete && !(p.rec.have > 0 && p.rec.have < p.rec.size)) { await deleteEntry(ctx.db, p.key).catch(() => {}); p.rec = null; p.size = -1; }
          }
        }
      }
      await Promise.all(parts.filter((p) => !p.fromCache).map((p) => openResponse(p, p.rec ? p.rec.have : 0, ctx)));
      for (const p of parts) {
        if (p.fromCache || p.size >= 0) continue;
        // no Content-Length (a compressed or chunked response): read it whole first
        const chunks = [];
        const rd = p.response.body.getReader();
        let n = 0;
        for (;;) { const r = await rd.read(); if (r.done) break; chunks.push(r.value); n += r.value.length; ctx.progress(r.value.length, 'download'); }
        p.jsChunks = chunks; p.size = n; ctx.loaded -= n;
      }
      for (const p of parts) if (p.rec && !p.fromCache && p.bodyStart === 0 && p.rec.have > 0) { await deleteEntry(ctx.db, p.key).catch(() => {}); p.rec = null; }
      ctx.total = parts.reduce((s, p) => s + p.size, 0);
      if (ctx.total === 0) throw new LoadError(`${urls.join(', ')}: empty file`);
      // 2. caching allowed? (the quota must hold what is still to be stored)
      ctx.persist = false;
      if (ctx.db) {
        const toStore = parts.filter((p) => !p.fromCache).reduce((s, p) => s + p.size - (p.rec ? p.rec.have : 0), 0);
        const free = toStore > 0 ? await freeBytes() : Infinity;
        if (toStore > 0 && toStore > free * 0.9) {
          ctx.warn(`edgelm: not caching the model: ${toStore} bytes to store, ${Math.max(0, Math.floor(free))} bytes of storage quota left; loading from the network only`);
        } else ctx.persist = true;
      }
      // 3. into the heap
      let off = 0;
      for (const p of parts) { p.offset = off; off += p.size; }
      const ptr = alloc(ctx.total);
      for (const p of parts) p.offset += ptr;
      ctx.progress(0, 'download');
      let bad = null;
      try {
        for (const p of parts) {
          if (p.fromCache) {
            const okRead = await readCached(p, ctx, heap, p.size);
            const sha = okRead ? await sha256(heap().subarray(p.offset, p.offset + p.size)) : '';
            if (!okRead || sha !== p.rec.sha256) { bad = p; break; }
            p.sha = sha;
            continue;
          }
          if (ctx.persist && !p.rec && ctx.db) {
            p.rec = { key: p.key, url: p.url, sha256: '', size: p.size, chunkSize: ctx.chunk, have: 0, complete: false, etag: p.validator.etag, lastModified: p.validator.lastModified, time: Date.now() };
          }
          if (p.rec && p.bodyStart > 0) {  // resume: the stored start of the file, then the rest from the network
            if (!(await readCached(p, ctx, heap, p.bodyStart))) { bad = p; break; }
          }
          if (p.jsChunks) {
            let at = 0;
            for (const c of p.jsChunks) { heap().set(c, p.offset + at); at += c.length; ctx.progress(c.length, 'download'); }
            p.jsChunks = null;
          } else {
            await streamPart(p, ctx, heap);
          }
        }
      } catch (e) {
        free(ptr);
        throw e;
      }
      if (bad) {  // a corrupt or incomplete cache entry: never used, deleted, fetched again
        free(ptr);
        ctx.warn(`edgelm: cached copy of ${bad.url} is corrupt; fetching it again`);
        await deleteEntry(ctx.db, bad.key).catch(() => {});
        if (attempt >= 1) throw new LoadError(`cached copy of ${bad.url} stays corrupt`);
        ctx.loaded = 0;
        continue;
      }
      // 4. verify
      const whole = heap().subarray(ptr, ptr + ctx.total);
      let got = '';
      if (want) {
        got = parts.length === 1 && parts[0].sha ? parts[0].sha : await sha256(whole);
        if (got !== want) {
          free(ptr);
          const cached = parts.some((p) => p.fromCache);
          for (const p of parts) if (ctx.db) await deleteEntry(ctx.db, p.key).catch(() => {});
          if (cached && attempt < 1) { ctx.loaded = 0; continue; }
          throw new LoadError(`sha256 mismatch for ${urls.join(' + ')}: expected ${want}, got ${got}`);
        }
      }
      const fromCache = parts.every((p) => p.fromCache);
      return {
        ptr, size: ctx.total, fromCache, log: ctx.log,
        async finish(accepted) {
          if (!ctx.db) return;
          for (const p of parts) {
            if (p.fromCache) continue;
            if (!accepted) { await deleteEntry(ctx.db, p.key).catch(() => {}); continue; }
            if (!ctx.persist || !p.rec) continue;
            try {
              const sha = parts.length === 1 && got ? got : await sha256(heap().subarray(p.offset, p.offset + p.size));
              // the chunks not yet stored, then the record that makes the entry complete
              await persistUpTo(p, ctx, heap, 0, p.size, true);
              if (!ctx.persist) continue;
              await putFile(ctx.db, Object.assign({}, p.rec, { sha256: sha, have: p.size, complete: true, time: Date.now() }));
            } catch (e) {
              ctx.warn(`edgelm: could not cache ${p.url}: ${e && e.message}`);
              await deleteEntry(ctx.db, p.key).catch(() => {});
            }
          }
        },
      };
    }
  }

  async function clearCache() {
    const db = await openDb();
    if (!db) return;
    const tx = db.transaction(['files', 'chunks'], 'readwrite');
    tx.objectStore('files').clear();
    tx.objectStore('chunks').clear();
    await done(tx);
  }

  self.edgelmFetch = { fetchModel, clearCache, sha256, LoadError, CHUNK, DB_NAME };
})();

// tests/web/server.mjs - the browser tests' HTTP server (dependency-free, 127.0.0.1 only).
//
//   node tests/web/server.mjs [--port P] [--isolation]      (prints "listening http://127.0.0.1:P")
//   import { startServer } from './server.mjs'; const s = await startServer({ isolation: true }); s.url; s.close();
//
// Serves
//   /pkg/...     build/web/pkg (the package under test)
//   /tests/...   tests/web (the test pages)
//   /repo-models/... the repository's models/ (the shipped edgelm-student GGUFs)
//   /consumer/... build/web/consumer (tests/web/consumer, the C++-only program)
//   /kernels/... build/web/kernels (tests/web/kernels, the wasm products vs the scalar reference)
//   /models/...  the shared models folder ($EDGELM_SHARED_DIR or ../shared/models next to the repository)
//   /test-data/...    the repository's tests/data (e.g. split/: a GGUF split by llama.cpp's gguf-split)
//   /split/NAME.partI-of-N   part I (0-based) of /models/NAME cut into N pieces of equal size (the last takes the rest)
// Switches on any /models or /split URL (query string; they also make the cache key differ):
//   status=404            that status with an HTML page body
//   html=1                200 with an HTML page (not a model file)
//   cut=N&tag=T           the first response for tag T (without Range) sends N bytes and then drops the connection
//   cutall=N              every response without Range is cut after N bytes
//   norange=1             ignores Range (always 200 with the whole file)
//   stall=N               sends N bytes, then nothing (the connection stays open)
//   nolength=1            no Content-Length (chunked)
// Every response has an ETag and Accept-Ranges: bytes (unless norange). With isolation, COOP same-origin + COEP
// require-corp + CORP same-origin on every response (crossOriginIsolated pages, SharedArrayBuffer, the MT build).
//   GET /__log  -> JSON list of {path, range, status, cut} for the requests so far; GET /__reset clears it.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
export const sharedModels = process.env.EDGELM_SHARED_DIR ? path.join(process.env.EDGELM_SHARED_DIR, 'models') : path.resolve(repo, '../shared/models');

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
                '.json': 'application/json', '.css': 'text/css', '.gguf': 'application/octet-stream', '.bin': 'application/octet-stream' };

function within(root, rel) {
  const p = path.resolve(root, '.' + path.posix.normalize('/' + rel));
  return p === root || p.startsWith(root + path.sep) ? p : null;
}

export function startServer({ port = 0, isolation = false } = {}) {
  const log = [];
  const cutTags = new Set();
  const stalled = new Set();
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    const q = u.searchParams;
    const headers = { 'Cache-Control': 'no-store' };
    if (isolation) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Resource-Policy': 'same-origin' });
    const entry = { path: u.pathname + u.search, range: req.headers.range || '', status: 0, cut: false };
    const send = (status, body, type) => {
      entry.status = status;
      if (!u.pathname.startsWith('/__')) log.push(entry);
      res.writeHead(status, Object.assign(headers, { 'Content-Type': type || 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }));
      res.end(body);
    };
    if (u.pathname === '/__log') return send(200, JSON.stringify(log), 'application/json');
    if (u.pathname === '/__reset') { log.length = 0; cutTags.clear(); return send(200, 'ok'); }
    if (u.pathname === '/favicon.ico') { res.writeHead(204, headers); return res.end(); }
    if (u.pathname === '/') return send(200, '<!doctype html><title>edgelm tests</title>', TYPES['.html']);

    let file = null, data = null;
    if (u.pathname.startsWith('/pkg/')) file = within(path.join(repo, 'build/web/pkg'), u.pathname.slice(5));
    else if (u.pathname.startsWith('/tests/')) file = within(here, u.pathname.slice(7));
    else if (u.pathname.startsWith('/repo-models/')) file = within(path.join(repo, 'models'), u.pathname.slice(13));
    else if (u.pathname.startsWith('/consumer/')) file = within(path.join(repo, 'build/web/consumer'), u.pathname.slice(10));
    else if (u.pathname.startsWith('/kernels/')) file = within(path.join(repo, 'build/web/kernels'), u.pathname.slice(9));
    else if (u.pathname.startsWith('/examples/')) file = within(path.join(repo, 'examples'), u.pathname.slice(10));
    else if (u.pathname.startsWith('/models/')) file = within(sharedModels, u.pathname.slice(8));
    else if (u.pathname.startsWith('/test-data/')) file = within(path.join(repo, 'tests/data'), u.pathname.slice(11));
    else if (u.pathname.startsWith('/split/')) {
      const m = /^(.+)\.part(\d+)-of-(\d+)$/.exec(u.pathname.slice(7));
      const src = m && within(sharedModels, m[1]);
      if (src && fs.existsSync(src)) {
        const all = fs.readFileSync(src);
        const i = +m[2], n = +m[3], each = Math.floor(all.length / n);
        if (i < n) data = all.subarray(i * each, i === n - 1 ? all.length : (i + 1) * each);
      }
    }
    if (!data && file && fs.existsSync(file) && fs.statSync(file).isFile()) data = fs.readFileSync(file);
    const isModel = u.pathname.startsWith('/models/') || u.pathname.startsWith('/split/') || u.pathname.startsWith('/repo-models/') || u.pathname.startsWith('/test-data/');
    if (q.has('status')) return send(+q.get('status'), `<!doctype html><html><body><h1>${+q.get('status')}</h1></body></html>`, TYPES['.html']);
    if (!data) return send(404, '<!doctype html><html><body><h1>404 Not Found</h1></body></html>', TYPES['.html']);
    if (isModel && q.has('html')) return send(200, '<!doctype html><html><body><h1>Welcome</h1><p>Not a model.</p></body></html>', TYPES['.html']);

    const type = TYPES[path.extname(file || '')] || 'application/octet-stream';
    const etag = '"' + crypto.createHash('sha1').update(data).digest('hex').slice(0, 16) + '"';
    headers.ETag = etag;
    headers['Content-Type'] = type;
    let start = 0, end = data.length, status = 200;
    const range = req.headers.range;
    if (!q.has('norange')) headers['Accept-Ranges'] = 'bytes';
    if (range && !q.has('norange') && isModel) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      const ifRange = req.headers['if-range'];
      if (m && (!ifRange || ifRange === etag)) {
        start = +m[1];
        end = m[2] ? Math.min(+m[2] + 1, data.length) : data.length;
        if (start >= data.length || start >= end) {
          entry.status = 416;
          log.push(entry);
          res.writeHead(416, Object.assign(headers, { 'Content-Range': `bytes */${data.length}`, 'Content-Length': 0 }));
          return res.end();
        }
        status = 206;
        headers['Content-Range'] = `bytes ${start}-${end - 1}/${data.length}`;
      }
    }
    const body = data.subarray(start, end);
    if (!q.has('nolength')) headers['Content-Length'] = body.length;
    entry.status = status;
    log.push(entry);
    let limit = -1;
    if (isModel && status === 200) {
      if (q.has('cut') && !cutTags.has(q.get('tag') || '')) { cutTags.add(q.get('tag') || ''); limit = +q.get('cut'); }
      if (q.has('cutall')) limit = +q.get('cutall');
    }
    if (isModel && q.has('stall')) {
      res.writeHead(status, headers);
      res.write(body.subarray(0, +q.get('stall')));
      stalled.add(res);
      return;  // never ends
    }
    res.writeHead(status, headers);
    if (limit >= 0 && limit < body.length) {
      entry.cut = true;
      res.write(body.subarray(0, limit), () => setTimeout(() => res.socket && res.socket.destroy(), 50));
      return;
    }
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const p = server.address().port;
      resolve({
        port: p, url: `http://127.0.0.1:${p}`, log,
        close: () => new Promise((r) => { for (const s of stalled) { try { s.socket.destroy(); } catch (_) {} } server.closeAllConnections && server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const a = process.argv.slice(2);
  const i = a.indexOf('--port');
  const s = await startServer({ port: i >= 0 ? +a[i + 1] : 8770, isolation: a.includes('--isolation') });
  console.log(`listening ${s.url}${a.includes('--isolation') ? ' (COOP/COEP)' : ''}`);
}

// examples/web-chat/serve.mjs - serves the offline web chat (dependency-free, 127.0.0.1 only).
//
//   node examples/web-chat/serve.mjs [--port P] [--no-isolation]      (tools/build_web.sh first: build/web/pkg)
//
//   /            examples/web-chat (index.html, app.js, style.css, sw.js)
//   /pkg/...     build/web/pkg (the edgelm package)
//   /models/...  the repository's models/ (default model: edgelm-student-q8_0.gguf)
// COOP same-origin + COEP require-corp on every response (crossOriginIsolated: the pthreads build, 2+ threads)
// unless --no-isolation (then the single-thread build runs). Range requests are answered (206), with an ETag.
// --port 0 picks a free port; the first line printed is "web-chat: http://127.0.0.1:PORT/".
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const args = process.argv.slice(2);
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : 8080;
const isolation = !args.includes('--no-isolation');
if (!Number.isInteger(port) || port < 0 || port > 65535) { console.error('web-chat: --port needs 0..65535'); process.exit(2); }

const roots = [['/pkg/', path.join(repo, 'build/web/pkg')], ['/models/', path.join(repo, 'models')], ['/', here]];
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
                '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json', '.gguf': 'application/octet-stream',
                '.svg': 'image/svg+xml', '.webmanifest': 'application/manifest+json' };
const etags = new Map();

function resolve(pathname) {
  for (const [prefix, root] of roots) {
    if (!pathname.startsWith(prefix)) continue;
    let rel = decodeURIComponent(pathname.slice(prefix.length)) || 'index.html';
    const p = path.resolve(root, '.' + path.posix.normalize('/' + rel));
    if (p !== root && !p.startsWith(root + path.sep)) return null;
    return p;
  }
  return null;
}

const server = http.createServer((req, res) => {
  const headers = { 'X-Content-Type-Options': 'nosniff' };
  if (isolation) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Resource-Policy': 'same-origin' });
  let u;
  try { u = new URL(req.url, 'http://127.0.0.1'); } catch (_) { res.writeHead(400, headers); return res.end(); }
  if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, headers); return res.end(); }
  const file = resolve(u.pathname);
  let st = null;
  try { st = file && fs.statSync(file); } catch (_) {}
  if (!st || !st.isFile()) {
    res.writeHead(404, Object.assign(headers, { 'Content-Type': 'text/html; charset=utf-8' }));
    return res.end('<!doctype html><title>404</title><h1>404 Not Found</h1>');
  }
  const key = file + ':' + st.mtimeMs + ':' + st.size;
  if (!etags.has(key)) etags.set(key, '"' + crypto.createHash('sha1').update(key).digest('hex').slice(0, 16) + '"');
  const etag = etags.get(key);
  Object.assign(headers, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream', 'Accept-Ranges': 'bytes', ETag: etag, 'Cache-Control': 'no-cache' });
  let start = 0, end = st.size, status = 200;
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range || '');
  if (m && (!req.headers['if-range'] || req.headers['if-range'] === etag)) {
    start = +m[1];
    end = m[2] ? Math.min(+m[2] + 1, st.size) : st.size;
    if (start >= end) { res.writeHead(416, Object.assign(headers, { 'Content-Range': `bytes */${st.size}` })); return res.end(); }
    status = 206;
    headers['Content-Range'] = `bytes ${start}-${end - 1}/${st.size}`;
  }
  headers['Content-Length'] = end - start;
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || end === start) return res.end();
  fs.createReadStream(file, { start, end: end - 1 }).pipe(res);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`web-chat: http://127.0.0.1:${server.address().port}/${isolation ? '' : ' (no COOP/COEP: single thread)'}`);
  if (!fs.existsSync(path.join(repo, 'build/web/pkg/edgelm.mjs'))) console.log('web-chat: warning: build/web/pkg is missing; run tools/build_web.sh');
});

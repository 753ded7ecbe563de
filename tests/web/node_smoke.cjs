// tests/web/node_smoke.cjs - the C ABI of build/web/pkg/edgelm-st.js under node (no browser): load a GGUF from a
// file into the heap buffer, greedy generate. usage: node --no-experimental-fetch node_smoke.cjs MODEL PROMPT N
const fs = require('fs');
const path = require('path');
// the package is "type": "module", so its emscripten glue (a classic script) is required from a .cjs copy
const os = require('os');
const pkg = process.env.EDGELM_WEB_PKG || path.resolve(__dirname, '../../build/web/pkg');
const glue = path.join(os.tmpdir(), `edgelm-st-${process.pid}.cjs`);
fs.copyFileSync(path.join(pkg, process.env.EDGELM_WEB_GLUE || 'edgelm-st.js'), glue);
const factory = require(glue);
fs.unlinkSync(glue);
(async () => {
  const [model, prompt = 'Once upon a time', n = '64'] = process.argv.slice(2);
  const M = await factory({ locateFile: (f) => path.join(pkg, f) });
  const bytes = fs.readFileSync(model);
  const ptr = M._edgelm_alloc(bytes.length);
  M.HEAPU8.set(bytes, ptr);
  const str = (p) => { let e = p; while (M.HEAPU8[e]) e++; return Buffer.from(M.HEAPU8.subarray(p, e)).toString(); };
  const e = M._edgelm_open(ptr, bytes.length, 0, 1, 0);
  if (!e) { console.error('open failed: ' + str(M._edgelm_error())); process.exit(1); }
  console.error(str(M._edgelm_info(e)));
  const pb = Buffer.from(prompt);
  const pp = M._malloc(pb.length + 1);
  M.HEAPU8.set(pb, pp);
  if (M._edgelm_begin(e, pp, pb.length, +n, 0, 0, 1, 0, 1, 0, 0, 0) !== 0) { console.error(str(M._edgelm_error())); process.exit(1); }
  let out = '';
  for (;;) {
    const rc = M._edgelm_step(e);
    if (rc < 0) { console.error(str(M._edgelm_error())); process.exit(1); }
    const len = M._edgelm_text_len(e), tp = M._edgelm_text(e);
    out += Buffer.from(M.HEAPU8.subarray(tp, tp + len)).toString();
    if (rc === 1) break;
  }
  process.stdout.write(prompt + out + '\n');
  console.error(str(M._edgelm_stats(e)));
  M._edgelm_close(e);
})();

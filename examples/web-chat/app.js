// examples/web-chat/app.js - the offline chat page: edgelm in a Web Worker, the model from the verified
// IndexedDB cache after the first visit, the app shell from a service worker (sw.js), so a reload works offline.
//
// Page hooks (window.edgelmChat):
//   outputFilter(text) -> text     applied to every reply before it is shown (default: identity); set it to
//                                  redact or rewrite what the model writes
//   maxInput                       characters per message (default 2000)
//   state()                        {ready, busy, on, info, replies} for tests
// ?model=URL&sha256=HEX picks another model; default: the repository's edgelm-student-q8_0.gguf.
// A model whose file carries a chat template (lm.info.hasChatTemplate) is spoken to through lm.chat() (its own
// template, its end-of-turn tokens, the KV cache of earlier turns reused); ?template=NAME (a built-in such as chatml)
// does the same for a model without one. Otherwise the conversation is plain "User: / Bot:" text for lm.generate().
import { load } from '/pkg/edgelm.mjs';

const DEFAULT_MODEL = { url: '/models/edgelm-student-q8_0.gguf', sha256: '60a693adedcba490198307092db69c5dcb5ad061f8bb6308400f13d16fedb7b8' };
const q = new URLSearchParams(location.search);
const MODEL = q.get('model') ? { url: q.get('model'), sha256: q.get('sha256') || undefined } : DEFAULT_MODEL;
const GEN = { maxTokens: 96, temperature: 0.7, topP: 0.9, repeatPenalty: 1.1, stop: ['\nUser:', '\nYou:'] };
const CHAT_GEN = { maxTokens: 96, temperature: 0.7, topP: 0.9, repeatPenalty: 1.1 };
const TEMPLATE = q.get('template') || undefined;

const $ = (id) => document.getElementById(id);
const hooks = window.edgelmChat = Object.assign({ outputFilter: (t) => t, maxInput: 2000 }, window.edgelmChat || {});
let lm = null, busy = false, abort = null, loading = null, replies = 0;
const history = [];  // {who: 'User'|'Bot', text}  (plain-text mode)
let messages = [];   // [{role, content}]          (chat-template mode: what the model said, unfiltered)
const useChat = () => !!lm && (lm.info.hasChatTemplate || !!TEMPLATE);

hooks.state = () => ({ ready: !!lm && !loading, busy, on: $('power').checked, info: lm ? lm.info : null, replies,
                       mode: lm ? (useChat() ? 'chat' : 'text') : null, stats: lm ? lm.stats : null });

// Service worker for the app shell (offline reloads). Not fatal when unavailable.
if ('serviceWorker' in navigator) navigator.serviceWorker.register('sw.js').catch((e) => console.warn('web-chat: no service worker:', e.message));

// Input sanitisation: Unicode NFC, no control characters but newline and tab, no bidi overrides, length limit.
export function sanitize(s, max = hooks.maxInput) {
  let t = String(s).normalize('NFC').replace(/\r\n?/g, '\n');
  t = t.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u200B-\u200F\u202A-\u202E\u2066-\u2069\uFEFF]/g, '');
  t = t.replace(/\n{3,}/g, '\n\n').trim();
  return [...t].slice(0, max).join('');
}

function add(cls, text) {
  const d = document.createElement('div');
  d.className = 'msg ' + cls;
  d.textContent = text;  // never innerHTML: model output and user input are text
  $('log').appendChild(d);
  $('log').scrollTop = $('log').scrollHeight;
  return d;
}
function setBusy(b) {
  busy = b;
  $('send').disabled = b || !lm;
  $('input').disabled = !lm;
  $('stop').disabled = !b;
}

async function start() {
  if (lm || loading) return;
  $('loading').classList.remove('hidden');
  $('load-status').textContent = 'loading the model…';
  const t0 = performance.now();
  loading = load(MODEL.url, {
    sha256: MODEL.sha256,
    cache: 'auto',
    onProgress: ({ loaded, total, phase }) => {
      $('bar').max = total || 1;
      $('bar').value = loaded;
      $('load-status').textContent = `${phase}: ${(loaded / 1048576).toFixed(1)} / ${(total / 1048576).toFixed(1)} MB`;
    },
  });
  try {
    const m = await loading;
    if (!$('power').checked) { await m.unload(); return; }  // switched off while loading
    lm = m;
    const i = lm.info;
    messages = [];
    $('load-status').textContent = `ready: ${i.arch} ${(i.params / 1e6).toFixed(1)}M params, ${i.precision}, ${i.threads} thread${i.threads > 1 ? 's' : ''} (${i.build}), ` +
      `${useChat() ? 'chat template' + (TEMPLATE ? ' ' + TEMPLATE : '') : 'plain text prompts'}, ` +
      `${i.fromCache ? 'from the cache' : 'downloaded'} in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    setTimeout(() => { if (lm) $('loading').classList.add('hidden'); }, 1500);
    setBusy(false);
    $('input').focus();
  } catch (e) {
    add('error', 'Could not load the model: ' + e.message);
    $('load-status').textContent = 'failed';
  } finally {
    loading = null;
  }
}

async function stop() {
  if (abort) abort.abort();
}

async function powerOff() {
  await stop();
  const m = lm;
  lm = null;
  setBusy(false);
  $('input').disabled = true;
  $('send').disabled = true;
  if (m) await m.unload();
  $('loading').classList.remove('hidden');
  $('bar').value = 0;
  $('load-status').textContent = 'model off (unloaded; no inference runs)';
}

// The conversation as plain text, the oldest turns left out until the prompt and the reply fit the context.
async function promptFor(text) {
  history.push({ who: 'User', text });
  const room = Math.max(16, lm.info.context - GEN.maxTokens - 1);
  for (let first = 0; first < history.length; first++) {
    const p = history.slice(first).map((h) => `${h.who}: ${h.text}\n`).join('') + 'Bot:';
    const ids = await lm.tokenize(p);
    if (ids.length <= room) return p;
    // the newest message alone is longer than the context: keep its end (the BOS is added again by generate)
    if (first === history.length - 1) return await lm.detokenize(Array.from(ids.slice(ids.length - room + 1)));
  }
  return 'Bot:';
}

async function send(ev) {
  ev && ev.preventDefault();
  if (!lm || busy) return;
  const text = sanitize($('input').value);
  if (!text) return;
  $('input').value = '';
  add('user', text);
  const out = add('bot streaming', '');
  setBusy(true);
  abort = new AbortController();
  let reply = '';
  const show = () => { out.textContent = hooks.outputFilter(reply.trimStart()); $('log').scrollTop = $('log').scrollHeight; };
  try {
    if (useChat()) {
      messages.push({ role: 'user', content: text });
      for (;;) {  // while the conversation does not fit the context, leave out its oldest turns
        try {
          for await (const piece of lm.chat(messages, Object.assign({ chatTemplate: TEMPLATE }, CHAT_GEN, { signal: abort.signal }))) { reply += piece; show(); }
          break;
        } catch (e) {
          if (!/context_overflow/.test(e.message) || reply || messages.length < 3) throw e;
          messages.splice(messages[0].role === 'system' ? 1 : 0, 2);
        }
      }
      messages.push({ role: 'assistant', content: reply });
      reply = hooks.outputFilter(reply.trim());
    } else {
      const prompt = await promptFor(text);
      for await (const piece of lm.generate(prompt, Object.assign({}, GEN, { signal: abort.signal }))) { reply += piece; show(); }
      reply = hooks.outputFilter(reply.trim());
      history.push({ who: 'Bot', text: reply });
    }
    out.textContent = reply || '…';
    replies++;
    const s = lm && lm.stats;
    if (s) $('info').textContent = `last reply: ${s.genTokens} tokens at ${s.genTokPerS.toFixed(0)} tok/s; prompt ${s.promptTokens} tokens ` +
      `(${s.reusedTokens} reused from the KV cache, the rest at ${s.promptTokPerS.toFixed(0)} tok/s)`;
  } catch (e) {
    if (messages.length && messages[messages.length - 1].role === 'user') messages.pop();  // the turn did not happen
    add('error', e.message);
  } finally {
    out.classList.remove('streaming');
    abort = null;
    setBusy(false);
  }
}

$('form').addEventListener('submit', send);
$('input').addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) send(e); });
$('stop').addEventListener('click', stop);
$('power').addEventListener('change', () => {
  $('power-label').textContent = $('power').checked ? 'model on' : 'model off';
  if ($('power').checked) start(); else powerOff();
});
start();

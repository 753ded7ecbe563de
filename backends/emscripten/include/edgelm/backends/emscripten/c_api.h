/* edgelm/backends/emscripten/c_api.h - the C ABI of the edgelm WebAssembly builds (implemented in
 * backends/emscripten/src/edgelm_web.cpp), used by the JS package's Worker (web/worker.js).
 *
 * Memory: the caller allocates the model file's buffer with edgelm_alloc(size), fills it (chunk by chunk,
 * straight into the wasm heap), then edgelm_open() takes ownership of it (freed on failure too).
 * Strings in: (pointer, length) in UTF-8. Strings out: edgelm_text(e) / edgelm_text_len(e), valid until the
 * next call on the same engine. Errors: a call returns 0 / -1 / NULL and edgelm_error() holds the engine's
 * message ("truncated: ..."). Synchronous throughout: no ASYNCIFY, no exceptions.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edgelm_engine edgelm_engine;

void* edgelm_alloc(size_t size);           /* 64-byte aligned; NULL: out of memory (see edgelm_error) */
void edgelm_free(void* p);
const char* edgelm_error(void);            /* the last error message (NUL-terminated) */
const char* edgelm_version(void);          /* "0.1.0 st" / "0.1.0 mt" */
int edgelm_max_threads(void);              /* 1 in the single-thread build */

/* precision: 0 auto (q8_0 / q4_0 when every matrix has that type, mixed for other quantized files, else f32), 1 f32
   (converted), 2 q8_0 and 3 q4_0 (only for files whose matrices are all of that type), 4 mixed (every matrix in its
   file type, in place). context 0: min(trained context, 4096). */
edgelm_engine* edgelm_open(void* buffer, size_t size, uint32_t context, uint32_t threads, int precision);
void edgelm_close(edgelm_engine* e);
/* One forward pass over n placeholder tokens and two single-token steps, then forgotten (the next prompt reuses
 * nothing): gets the browser's optimising compiler to the hot functions before the first prompt. 0, or -1. */
int edgelm_warm_up(edgelm_engine* e, uint32_t n);
const char* edgelm_info(edgelm_engine* e);   /* JSON object */
const char* edgelm_stats(edgelm_engine* e);  /* JSON object of the last generation (promptTokens, reusedTokens, ...) */
/* JSON {"template": the file's chat template or null, "bos": bos_token's text or null, "eos": ...}: what a chat
 * template renderer (text_api.h, edgelm-text.wasm) is given. */
const char* edgelm_chat_info(edgelm_engine* e);

/* Token ids of text (add_special: the tokenizer's BOS...); returns the count (ids at edgelm_ids), -1 on error. */
int edgelm_tokenize(edgelm_engine* e, const char* text, size_t len, int add_special);
const int32_t* edgelm_ids(edgelm_engine* e);
/* Text of ids into edgelm_text; returns its length, -1 on error. */
int edgelm_detokenize(edgelm_engine* e, const int32_t* ids, size_t n);

/* Start a generation. stops: n_stops NUL-terminated stop strings back to back. seed: any integer < 2^53.
 * rendered: 0 = a text prompt (tokenized with the tokenizer's BOS); 1 = a chat template's output (its special
 * tokens parsed, nothing added). The prefix already in the KV cache is reused either way.
 * Returns 0, or -1 (edgelm_error). */
int edgelm_begin(edgelm_engine* e, const char* prompt, size_t len, uint32_t max_tokens, float temperature, uint32_t top_k, float top_p,
                 float min_p, float repeat_penalty, double seed, const char* stops, uint32_t n_stops, int rendered);
/* One token: 0 = text in edgelm_text (maybe empty), more to come; 1 = done (edgelm_text holds the last text);
 * -1 = error. */
int edgelm_step(edgelm_engine* e);
const char* edgelm_text(edgelm_engine* e);
int edgelm_text_len(edgelm_engine* e);
int32_t edgelm_token(edgelm_engine* e);   /* the token the last step generated (-1: none, or EOS/BOS/a stop token) */
void edgelm_cancel(edgelm_engine* e);

#ifdef __cplusplus
}
#endif

// backends/emscripten/src/edgelm_web.cpp - the C ABI (c_api.h) of the edgelm wasm builds: the translation unit
// that tools/build_web.sh compiles into build/web/pkg/edgelm-st.wasm and edgelm-mt.wasm.
// The library throws nothing; this file adds no exceptions, no printing and no ASYNCIFY.
#include <edgelm/backends/emscripten/c_api.h>
// Size: what runs per token (kernels, forward pass, sampler, text stream) is compiled for speed; what runs once
// per load or per prompt (file parsers, tokenizer construction and encoding, the loader) for size: clang's
// minsize on every function those headers and this file declare (the push lasts to the end of the file).
// The per-token headers are included first, so later includes find them done.
#include <edgelm/backends/highway.hpp>
#include <edgelm/model/transformer.hpp>
#include <edgelm/sampling/sampler.hpp>
#include <edgelm/text/stream.hpp>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((minsize)), apply_to = function)
#endif
#include <edgelm/formats/gguf.hpp>
#include <edgelm/tokenizer/text_tokenizer.hpp>
#include <edgelm/load.hpp>
#include <edgelm/session.hpp>
#include <edgelm/backends/emscripten/engine.hpp>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#if defined(__EMSCRIPTEN__)
#include <emscripten/emscripten.h>
#define EDGELM_EXPORT EMSCRIPTEN_KEEPALIVE
#else
#define EDGELM_EXPORT
#endif

#ifndef EDGELM_WEB_VERSION
#define EDGELM_WEB_VERSION "0.1.0"
#endif

struct edgelm_engine {
  std::unique_ptr<edgelm::web::engine> e;
  std::string out;              // edgelm_text / info / stats
  std::vector<std::int32_t> ids;
};

namespace {
std::string g_error;  // the C ABI's last error (the library itself keeps no global state)

template <class R>
bool ok(const R& r) {
  if (r) return true;
  g_error = r.error().message();
  return false;
}
}  // namespace

extern "C" {

EDGELM_EXPORT void* edgelm_alloc(size_t size) {
  const size_t rounded = (size + 63) / 64 * 64;
  void* p = rounded >= size ? std::aligned_alloc(64, rounded == 0 ? 64 : rounded) : nullptr;
  if (!p) g_error = "out_of_memory: cannot allocate " + std::to_string(size) + " bytes in the wasm heap";
  return p;
}

EDGELM_EXPORT void edgelm_free(void* p) { std::free(p); }

EDGELM_EXPORT const char* edgelm_error(void) { return g_error.c_str(); }

EDGELM_EXPORT const char* edgelm_version(void) {
#if defined(__EMSCRIPTEN_PTHREADS__)
  return EDGELM_WEB_VERSION " mt";
#else
  return EDGELM_WEB_VERSION " st";
#endif
}

EDGELM_EXPORT int edgelm_max_threads(void) {
#if defined(__EMSCRIPTEN_PTHREADS__)
  return static_cast<int>(edgelm::thread_pool::max_threads);
#else
  return 1;
#endif
}

EDGELM_EXPORT edgelm_engine* edgelm_open(void* buffer, size_t size, uint32_t context, uint32_t threads, int precision) {
  if (!buffer) {
    g_error = "invalid_argument: no buffer";
    return nullptr;
  }
  auto hs = edgelm::web::heap_storage::adopt(buffer, size);
  edgelm::web::engine_options o;
  o.context = context;
  o.threads = threads;
  static const char* names[] = {"auto", "f32", "q8_0", "q4_0", "mixed"};  // c_api.h's codes 0..4
  if (precision < 0 || precision > 4) {
    g_error = "invalid_argument: precision code " + std::to_string(precision);
    return nullptr;
  }
  o.precision = names[precision];
  auto e = edgelm::web::engine::open(std::move(hs), o);
  if (!ok(e)) return nullptr;
  auto* h = new (std::nothrow) edgelm_engine();
  if (!h) {
    g_error = "out_of_memory: engine handle";
    return nullptr;
  }
  h->e = std::move(*e);
  return h;
}

EDGELM_EXPORT void edgelm_close(edgelm_engine* e) { delete e; }

EDGELM_EXPORT int edgelm_warm_up(edgelm_engine* e, uint32_t n) { return ok(e->e->warm_up(n)) ? 0 : -1; }

EDGELM_EXPORT const char* edgelm_info(edgelm_engine* e) {
  e->out = e->e->info_json();
  return e->out.c_str();
}

EDGELM_EXPORT const char* edgelm_stats(edgelm_engine* e) {
  e->out = e->e->stats_json();
  return e->out.c_str();
}

EDGELM_EXPORT int edgelm_tokenize(edgelm_engine* e, const char* text, size_t len, int add_special) {
  e->ids = e->e->tokenize(std::string_view(text ? text : "", text ? len : 0), add_special != 0);
  return static_cast<int>(e->ids.size());
}

EDGELM_EXPORT const int32_t* edgelm_ids(edgelm_engine* e) { return e->ids.data(); }

EDGELM_EXPORT int edgelm_detokenize(edgelm_engine* e, const int32_t* ids, size_t n) {
  auto r = e->e->detokenize(std::span<const std::int32_t>(ids, ids ? n : 0));
  if (!ok(r)) return -1;
  e->out = std::move(*r);
  return static_cast<int>(e->out.size());
}

EDGELM_EXPORT const char* edgelm_chat_info(edgelm_engine* e) {
  auto str = [](const std::optional<std::string>& s) { return s ? "\"" + edgelm::web::detail::json_escape(*s) + "\"" : std::string("null"); };
  const std::string& t = e->e->chat_template();
  e->out = "{\"template\":" + (t.empty() ? std::string("null") : "\"" + edgelm::web::detail::json_escape(t) + "\"") +
           ",\"bos\":" + str(e->e->bos_text()) + ",\"eos\":" + str(e->e->eos_text()) + "}";
  return e->out.c_str();
}

EDGELM_EXPORT int edgelm_begin(edgelm_engine* e, const char* prompt, size_t len, uint32_t max_tokens, float temperature, uint32_t top_k, float top_p,
                               float min_p, float repeat_penalty, double seed, const char* stops, uint32_t n_stops, int rendered) {
  edgelm::generate_options g;
  g.max_tokens = max_tokens;
  g.temperature = temperature;
  g.top_k = top_k;
  g.top_p = top_p;
  g.min_p = min_p;
  g.repeat_penalty = repeat_penalty;
  if (!(seed >= 0) || seed > 9007199254740992.0) {
    g_error = "invalid_argument: seed must be an integer 0..2^53";
    return -1;
  }
  g.seed = static_cast<std::uint64_t>(seed);
  const char* p = stops;
  for (uint32_t i = 0; p && i < n_stops; ++i) {
    const size_t n = std::strlen(p);
    g.stop.emplace_back(p, n);
    p += n + 1;
  }
  e->out.clear();
  auto r = e->e->begin(std::string_view(prompt ? prompt : "", prompt ? len : 0), g, rendered != 0);
  return ok(r) ? 0 : -1;
}

EDGELM_EXPORT int edgelm_step(edgelm_engine* e) {
  auto r = e->e->step();
  if (!ok(r)) return -1;
  e->out.assign(r->text);
  e->ids.assign(1, r->generated ? r->token : -1);
  return r->done ? 1 : 0;
}

EDGELM_EXPORT const char* edgelm_text(edgelm_engine* e) { return e->out.data(); }
EDGELM_EXPORT int edgelm_text_len(edgelm_engine* e) { return static_cast<int>(e->out.size()); }
EDGELM_EXPORT int32_t edgelm_token(edgelm_engine* e)  // -1: none, or one that ended the generation (EOS...)
 { return e->ids.empty() ? -1 : e->ids[0]; }
EDGELM_EXPORT void edgelm_cancel(edgelm_engine* e) { e->e->cancel(); }

}  // extern "C"

#if defined(__clang__)
#pragma clang attribute pop
#endif

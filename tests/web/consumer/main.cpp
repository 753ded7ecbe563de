// tests/web/consumer/main.cpp - a small Emscripten C++ program that uses edgelm and backends/emscripten
// directly (no edgelm JS package): fetches a model with fetch.hpp, loads it, generates greedily, and reports to
// the page (window.consumer = {text | error, progress, source, warnings}). tools/build_web.sh builds it into
// build/web/consumer/; tests/web/run.mjs opens tests/web/consumer.html?model=URL&prompt=P&n=N[&sha256=H][&cache=none].
#define EDGELM_FETCH_IMPLEMENTATION
#include <edgelm/backends/emscripten/engine.hpp>
#include <edgelm/backends/emscripten/fetch.hpp>

#include <emscripten/emscripten.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace {
std::unique_ptr<edgelm::web::engine> g_engine;
std::string g_prompt;
unsigned g_n = 64;
unsigned g_progress_calls = 0;
std::uint64_t g_last_loaded = 0, g_total = 0;
std::string g_source = "none", g_warnings;

void report(const char* key, const std::string& value) {
  EM_ASM({ window.consumer = window.consumer || {}; window.consumer[UTF8ToString($0)] = UTF8ToString($1); }, key, value.c_str());
}

void on_model(edgelm::result<edgelm::web::heap_storage> r) {
  report("progress", std::to_string(g_progress_calls) + " " + std::to_string(g_last_loaded) + "/" + std::to_string(g_total));
  report("source", g_source);
  report("warnings", g_warnings);
  if (!r) return report("error", r.error().message());
  auto e = edgelm::web::engine::open(std::move(*r));
  if (!e) return report("error", e.error().message());
  g_engine = std::move(*e);
  edgelm::generate_options g;
  g.max_tokens = g_n;
  g.temperature = 0;
  auto b = g_engine->begin(g_prompt, g);
  if (!b) return report("error", b.error().message());
  std::string text = g_prompt;
  for (;;) {
    auto s = g_engine->step();
    if (!s) return report("error", s.error().message());
    text += s->text;
    if (s->done) break;
  }
  report("info", g_engine->info_json());
  report("text", text);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    report("error", "usage: consumer URL [PROMPT [N]]");
    return 0;
  }
  g_prompt = argc > 2 ? argv[2] : "Once upon a time";
  g_n = argc > 3 ? static_cast<unsigned>(std::atoi(argv[3])) : 64;
  std::vector<std::string> urls;
  std::string list = argv[1];  // several URLs separated by spaces: one split model
  for (std::size_t at = 0; at < list.size();) {
    const std::size_t sp = std::min(list.find(' ', at), list.size());
    if (sp > at) urls.push_back(list.substr(at, sp - at));
    at = sp + 1;
  }
  edgelm::web::fetch_options o;
  o.timeout_ms = 5000;
  if (argc > 4) o.sha256 = argv[4];
  if (argc > 5 && std::string(argv[5]) == "none") o.cache = edgelm::web::cache_mode::none;
  o.on_warning = [](const std::string& w) { g_warnings += w + "\n"; };
  edgelm::web::fetch_model(std::move(urls), o,
                           [](std::uint64_t loaded, std::uint64_t total, edgelm::web::fetch_phase ph) {
                             ++g_progress_calls;
                             g_last_loaded = loaded;
                             g_total = total;
                             g_source = ph == edgelm::web::fetch_phase::cache ? "cache" : "network";
                           },
                           on_model);
  return 0;  // the runtime stays alive (EXIT_RUNTIME=0); the callbacks run from the event loop
}

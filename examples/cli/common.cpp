// examples/cli/common.cpp - helpers every command shares: errors, output, memory, threads, model loading.
#include "cli.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstdio>

#if defined(__unix__) && !defined(__EMSCRIPTEN__)
#include <sys/resource.h>
#endif

namespace edgelm_cli {

int fail(const std::string& msg) {
  std::fprintf(stderr, "edgelm: error: %s\n", msg.c_str());
  return 1;
}

std::string err_text(const edgelm::error& e) { return e.message(); }

std::string parse_ids(const std::string& text, std::size_t vocab, std::vector<std::int32_t>& ids) {
  const char* p = text.c_str();
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '\r') ++p;
    if (!*p) break;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(p, &end, 10);
    if (end == p || errno || v < 0 || static_cast<std::size_t>(v) >= vocab)
      return "'" + std::string(p).substr(0, 20) + "' is not a token id (0.." + std::to_string(vocab ? vocab - 1 : 0) + ")";
    ids.push_back(static_cast<std::int32_t>(v));
    p = end;
  }
  return {};
}

// run.c's safe_printf: skip single bytes that are neither printable nor whitespace.
void safe_print(std::string_view piece) {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    const auto c = static_cast<unsigned char>(piece[0]);
    if (!(std::isprint(c) || std::isspace(c))) return;
  }
  std::fwrite(piece.data(), 1, piece.size(), stdout);
}

// Peak resident memory: getrusage natively; in WebAssembly the size of linear memory (it only grows).
double peak_rss_mb() {
#if defined(__unix__) && !defined(__EMSCRIPTEN__)
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
#elif defined(__wasm__)
  return static_cast<double>(__builtin_wasm_memory_size(0)) * 65536.0 / (1024.0 * 1024.0);
#else
  return 0.0;
#endif
}

std::optional<std::string> read_text_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return std::nullopt;
  std::string s;
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) return std::nullopt;
  return s;
}

edgelm::result<engine> make_engine(long threads) {
  engine e;
  if (threads > 1) {
    auto p = edgelm::thread_pool::create(static_cast<unsigned>(threads));
    if (!p) return p.error();
    e.pool = std::move(*p);
    e.exec = e.pool->get_executor();
  }
  return e;
}

edgelm::session_options session_opts(const options& o, const engine& e) {
  edgelm::session_options so;
  so.context = static_cast<std::uint32_t>(o.context);
  so.batch = static_cast<std::uint32_t>(o.batch);
  so.kv = o.kv;
  so.exec = e.exec;
  return so;
}

edgelm::state_options state_opts(const options& o, const engine& e) {
  edgelm::state_options so;
  so.context = static_cast<std::uint32_t>(o.context);
  so.max_batch = static_cast<std::uint32_t>(o.batch);
  so.kv = o.kv;
  so.exec = e.exec;
  return so;
}

namespace {
// Library log lines: the load summary (info) always, per-tensor detail (debug) with --verbose.
void log_to_stderr(void* verbose, edgelm::log_level level, std::string_view line) {
  if (level == edgelm::log_level::debug && !*static_cast<const bool*>(verbose)) return;
  std::fprintf(stderr, "edgelm: %.*s\n", static_cast<int>(line.size()), line.data());
}
}  // namespace

void log_always(void*, edgelm::log_level, std::string_view line) {
  std::fprintf(stderr, "edgelm: %.*s\n", static_cast<int>(line.size()), line.data());
}

edgelm::result<cli_model> load_model(const options& o) {
  edgelm::any_load_options lo;
  lo.load.repack = o.repack;
  lo.load.log.fn = log_to_stderr;
  lo.load.log.user = const_cast<bool*>(&o.verbose);
  lo.precision = o.precision;
  lo.kernels = o.kernels;
  return edgelm::load_any_path<cli_model>(o.model, o.tokenizer, lo, /*allow_no_tokenizer=*/o.command == "logits" || (o.command == "run" && !o.ids.empty()));
}

}  // namespace edgelm_cli

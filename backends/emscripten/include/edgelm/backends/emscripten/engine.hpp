// edgelm/backends/emscripten/engine.hpp - one loaded model behind a type-erased interface, for the C ABI
// (c_api.h) and for C++ Emscripten projects that want the precision chosen from the file at run time:
//
//   auto e = edgelm::web::engine::open(std::move(heap), {.context = 512, .threads = 1});
//   e->begin("Once upon a time", gen_options);                   // prompt (prefilled as the CLI does)
//   e->begin(rendered_chat, gen_options, /*rendered=*/true);     // a chat template's output (its specials parsed)
//   while (true) { auto r = e->step(); if (!r) ...; use(r->text); if (r->done) break; }   // one token per call
//
// Kernels: the Highway backend (WASM SIMD128 under em++ -msimd128). Precision "auto" is the CLI's rule
// (any_model.hpp's choose_precision): q8_0 or q4_0 when every weight matrix of the file has that type, mixed when
// some matrix is quantized in another type or a mix of types (llama-quantize's Q4_K_M / Q5_K_M / Q6_K, a Q4_0 file
// whose output.weight is Q6_K: each matrix in its file type, in place), f32 when all are float (F32/F16/BF16).
// Instantiations: two, engine_of<f32> and engine_of<mixed> (the single-thread .wasm has a 150 KB gzip budget:
// the uniform engine_of<q8_0> / engine_of<q4_0> cost ~5.5 KB each). A file whose matrices are all Q8_0 (or all
// Q4_0) runs as mixed, which uses the same matrix kernels and the same bytes in place, and is reported as "q8_0"
// ("q4_0"). An explicit q8_0 / q4_0 for another file (converting at load) needs those engines: define
// EDGELM_WEB_CONVERT_ENGINES to compile them in; without it that is an invalid_argument error.
// Model files: GGUF only (it carries the tokenizer; a llama2.c checkpoint would need a second file).
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <edgelm/any_model.hpp>
#include <edgelm/backends/highway.hpp>
#include <edgelm/core/thread_pool.hpp>
#include <edgelm/load.hpp>
#include <edgelm/session.hpp>
#include <edgelm/text/stream.hpp>

#include "heap_storage.hpp"

namespace edgelm::web {

using web_kernels = edgelm::backends::highway::kernels;

struct engine_options {
  std::uint32_t context = 0;   // 0: min(trained context, EDGELM_DEFAULT_CONTEXT)
  unsigned threads = 1;        // > 1 needs a -pthread build
  std::string precision = "auto";  // auto (choose_precision, the CLI's rule) | f32 | q8_0 | q4_0 | mixed (see the top)
  std::uint32_t batch = 64;    // prompt tokens per forward pass
};

struct step_output {
  std::string_view text;  // whole UTF-8 characters released by this step (valid until the next call)
  std::int32_t token = -1;
  bool generated = false;  // token is part of the generation (not an EOS/BOS/stop token that ended it)
  bool done = false;
};

struct engine_stats {
  std::uint32_t prompt_tokens = 0;   // the whole conversation given to begin() (incl. BOS)
  std::uint32_t reused_tokens = 0;   // of those, already in the KV cache (the prefix shared with the previous call)
  double prompt_ms = 0;
  std::uint32_t gen_tokens = 0;
  double gen_ms = 0;
  double load_ms = 0;
};

namespace detail {
// The model's tokenizer, through the calls both tokenizer types share (SentencePiece `tokenizer` and the
// `text_tokenizer` facade).
template <class T>
std::vector<std::int32_t> encode(const T& tok, std::string_view text, bool add_special) {
  if constexpr (requires { tok.decode_piece(0, true); }) return tok.encode(text, add_special);
  else return tok.encode(text, add_special && tok.add_bos());
}
inline std::string json_escape(std::string_view s) {
  std::string o;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') { o += '\\'; o += ch; }
    else if (c < 0x20) { static const char* hx = "0123456789abcdef"; o += "\\u00"; o += hx[c >> 4]; o += hx[c & 15]; }
    else o += ch;
  }
  return o;
}
}  // namespace detail

class engine {
 public:
  using clock = std::chrono::steady_clock;
  virtual ~engine() = default;

  static result<std::unique_ptr<engine>> open(heap_storage bytes, const engine_options& o = {});

  virtual const model_config& config() const noexcept = 0;
  virtual std::string_view precision() const noexcept = 0;
  virtual std::uint64_t parameters() const noexcept = 0;
  virtual std::uint64_t file_bytes() const noexcept = 0;
  virtual std::uint32_t context() const noexcept = 0;
  unsigned threads() const noexcept { return pool_ ? pool_->threads() : 1; }
  const engine_stats& stats() const noexcept { return stats_; }

  virtual std::vector<std::int32_t> tokenize(std::string_view text, bool add_special) const = 0;
  // The file's chat template (GGUF tokenizer.chat_template; empty: none) and the bos_token / eos_token strings
  // a template is given (nullopt: the vocabulary has none), as `edgelm chat` passes them.
  virtual const std::string& chat_template() const noexcept = 0;
  virtual std::optional<std::string> bos_text() const = 0;
  virtual std::optional<std::string> eos_text() const = 0;
  virtual result<std::string> detokenize(std::span<const std::int32_t> ids) const = 0;

  // Start a generation: the prompt (tokenized with the tokenizer's BOS, prefix reuse) is run now; then
  // step() samples one token per call. o.stop are stop strings (the text ends before the first).
  // rendered: the prompt is a chat template's output (session::prompt_rendered: special tokens in it parsed, no
  // BOS added); the longest prefix already in the KV cache is kept either way, so a conversation that grows
  // turn by turn prefills only its new tokens (stats().reused_tokens).
  virtual result<void> begin(std::string_view prompt, const generate_options& o, bool rendered = false) = 0;
  virtual result<step_output> step() = 0;
  // Run the forward pass once on a batch of n placeholder tokens and twice on single tokens, then forget them
  // (session::clear): browsers compile wasm with a baseline compiler first and optimise the functions that turn out
  // hot, so without this the first prompt after a load runs partly unoptimised code (seen: about half the speed of
  // later prompts in Chromium). Costs that forward work once per load.
  virtual result<void> warm_up(std::uint32_t n) = 0;
  // Abandon the generation in progress (the next begin() starts afresh).
  void cancel() noexcept { active_ = false; }
  bool active() const noexcept { return active_; }

  // JSON objects for the JS side.
  std::string info_json() const {
    const auto& c = config();
    std::string s = "{\"arch\":\"" + detail::json_escape(c.arch) + "\",\"params\":" + std::to_string(parameters()) + ",\"precision\":\"" +
                    std::string(precision()) + "\",\"vocabSize\":" + std::to_string(c.vocab_size) + ",\"context\":" + std::to_string(context()) +
                    ",\"trainedContext\":" + std::to_string(c.seq_len) + ",\"threads\":" + std::to_string(threads()) + ",\"simd\":\"" +
#if defined(__wasm_simd128__)
                    "wasm-simd128"
#else
                    "none"
#endif
                    "\",\"kernels\":\"" + std::string(web_kernels::name) + "/" + web_kernels::target() + "\",\"dim\":" + std::to_string(c.dim) +
                    ",\"layers\":" + std::to_string(c.n_layers) + ",\"heads\":" + std::to_string(c.n_heads) + ",\"kvHeads\":" + std::to_string(c.n_kv_heads) +
                    ",\"fileBytes\":" + std::to_string(file_bytes()) + ",\"hasChatTemplate\":" + (chat_template().empty() ? "false" : "true") + "}";
    return s;
  }
  std::string stats_json() const {
    const auto& t = stats_;
    auto rate = [](std::uint32_t n, double ms) { return ms > 0 ? static_cast<double>(n) * 1000.0 / ms : 0.0; };
    auto num = [](double v) {  // v >= 0 with 3 decimals (integers only: no printf's float formatting in the .wasm)
      const unsigned long long m = v >= 0 && v < 1e15 ? static_cast<unsigned long long>(v * 1000.0 + 0.5) : 0;
      const std::string f = std::to_string(m % 1000);
      return std::to_string(m / 1000) + "." + std::string(3 - f.size(), '0') + f;
    };
    // promptTokPerS: the tokens actually prefilled (not those reused from the KV cache) per second
    return "{\"promptTokens\":" + std::to_string(t.prompt_tokens) + ",\"reusedTokens\":" + std::to_string(t.reused_tokens) +
           ",\"promptMs\":" + num(t.prompt_ms) + ",\"promptTokPerS\":" + num(rate(t.prompt_tokens - t.reused_tokens, t.prompt_ms)) +
           ",\"genTokens\":" + std::to_string(t.gen_tokens) + ",\"genMs\":" + num(t.gen_ms) + ",\"genTokPerS\":" + num(rate(t.gen_tokens, t.gen_ms)) +
           ",\"loadMs\":" + num(t.load_ms) + ",\"heapBytes\":" + std::to_string(heap_bytes()) + "}";
  }
  static std::uint64_t heap_bytes() noexcept {
#if defined(__wasm__)
    return static_cast<std::uint64_t>(__builtin_wasm_memory_size(0)) * 65536u;
#else
    return 0;
#endif
  }

 protected:
  std::unique_ptr<thread_pool> pool_;  // destroyed after the derived class's session
  engine_stats stats_;
  bool active_ = false;
};

template <weight_policy P>
class engine_of final : public engine {
 public:
  using model_type = model<P, web_kernels>;
  using session_type = session<model_type>;

  // label: the precision reported (P::name, or "q8_0" / "q4_0" for a mixed engine over a uniform file)
  static result<std::unique_ptr<engine>> create(model_file mf, const engine_options& o, std::unique_ptr<thread_pool> pool, clock::time_point t0,
                                                std::string_view label = P::name) {
    load_options lo;
    auto m = load<P, web_kernels>(std::move(mf), lo);
    if (!m) return m.error();
    std::unique_ptr<engine_of> e(new (std::nothrow) engine_of());
    if (!e) return make_error(errc::out_of_memory, "cannot allocate the engine");
    e->pool_ = std::move(pool);
    e->label_ = label;
    e->m_ = std::make_unique<model_type>(std::move(*m));
    session_options so;
    so.context = o.context;
    so.batch = o.batch;
    if (e->pool_) so.exec = e->pool_->get_executor();
    auto s = session_type::create(*e->m_, so);
    if (!s) return s.error();
    e->s_ = std::make_unique<session_type>(std::move(*s));
    e->stats_.load_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    return std::unique_ptr<engine>(std::move(e));
  }

  ~engine_of() override { s_.reset(); }

  const model_config& config() const noexcept override { return m_->config(); }
  std::string_view precision() const noexcept override { return label_; }
  std::uint64_t parameters() const noexcept override {
    std::uint64_t n = 0;
    for (const auto& t : m_->net.file().tensors) n += t.n_elements();
    return n;
  }
  std::uint64_t file_bytes() const noexcept override {
    const auto& b = m_->net.file().bytes;
    return b ? b->bytes().size() : 0;
  }
  std::uint32_t context() const noexcept override { return s_->context(); }

  std::vector<std::int32_t> tokenize(std::string_view text, bool add_special) const override { return detail::encode(m_->tok, text, add_special); }
  const std::string& chat_template() const noexcept override { return m_->tok.chat_template(); }
  std::optional<std::string> bos_text() const override {
    if (!m_->tok.bos()) return std::nullopt;
    return m_->tok.token_text(m_->tok.bos());
  }
  std::optional<std::string> eos_text() const override {
    if (!m_->tok.eos()) return std::nullopt;
    return m_->tok.token_text(m_->tok.eos());
  }
  result<std::string> detokenize(std::span<const std::int32_t> ids) const override {
    const std::int32_t v = static_cast<std::int32_t>(m_->config().vocab_size);
    for (auto t : ids)
      if (t < 0 || t >= v) return make_error(errc::invalid_argument, "token id " + std::to_string(t) + " outside the vocabulary (0.." + std::to_string(v - 1) + ")");
    const std::vector<std::int32_t> copy(ids.begin(), ids.end());
    return m_->tok.decode(copy);
  }

  result<void> begin(std::string_view prompt, const generate_options& o, bool rendered) override {
    active_ = false;
    auto sv = validate(o.sampling(), m_->config().vocab_size);
    if (!sv) return sv.error();
    const auto t0 = clock::now();
    auto pr = rendered ? s_->prompt_rendered(prompt) : s_->prompt(prompt);
    if (!pr) return pr.error();
    stats_.prompt_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    stats_.prompt_tokens = static_cast<std::uint32_t>(s_->tokens().size());
    stats_.reused_tokens = s_->reused_tokens();
    stats_.gen_tokens = 0;
    stats_.gen_ms = 0;
    s_->reset_sampler(o.sampling());
    s_->set_stops(o.stop_tokens, {});  // stop strings: this engine's own stream, so that max_tokens can flush it
    stream_.set_stops(o.stop);
    max_tokens_ = o.max_tokens;
    count_ = 0;
    active_ = max_tokens_ > 0;
    return {};
  }

  result<void> warm_up(std::uint32_t n) override {
    active_ = false;
    const std::int32_t t = m_->tok.bos() ? *m_->tok.bos() : 0;
    n = std::max<std::uint32_t>(1, std::min<std::uint32_t>(n, s_->context() > 2 ? s_->context() - 2 : 1));
    const std::vector<std::int32_t> ids(n, t);
    auto r = s_->set_tokens(ids);
    for (int i = 0; r && i < 2 && s_->tokens().size() < s_->context(); ++i) r = s_->feed(t);
    s_->clear();
    return r;
  }

  result<step_output> step() override {
    step_output out;
    out.done = true;
    if (!active_) return out;
    const auto t0 = clock::now();
    auto r = s_->step();
    stats_.gen_ms += std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (!r) {
      active_ = false;
      return r.error();
    }
    out.token = r->token;
    out.done = false;
    if (r->done && r->piece.empty()) {  // EOS / BOS / a stop token: not text
      text_.assign(stream_.flush());
      out.done = true;
    } else {
      ++stats_.gen_tokens;
      out.generated = true;
      text_.assign(stream_.push(r->piece));
      if (stream_.stopped()) out.done = true;
      else if (r->done || ++count_ >= max_tokens_) {
        text_.append(stream_.flush());
        out.done = true;
      }
    }
    if (out.done) active_ = false;
    out.text = text_;
    return out;
  }

 private:
  engine_of() = default;
  std::string_view label_ = P::name;  // (static strings only)
  std::unique_ptr<model_type> m_;
  std::unique_ptr<session_type> s_;
  text_stream stream_;
  std::string text_;
  std::uint32_t max_tokens_ = 0, count_ = 0;
};

inline result<std::unique_ptr<engine>> engine::open(heap_storage bytes, const engine_options& o) {
  const auto t0 = clock::now();
  if (o.threads == 0 || o.threads > thread_pool::max_threads) return make_error(errc::invalid_argument, "threads must be 1.." + std::to_string(thread_pool::max_threads));
  if (!is_gguf(bytes.bytes()))  // (read_gguf only: the llama2.c reader is not linked into the browser builds)
    return make_error(errc::bad_magic, "not a GGUF model file (no GGUF magic at byte 0)");
  auto mf = read_gguf(::edgelm::detail::own_bytes(std::move(bytes)));
  if (!mf) return mf.error();
  std::string_view prec = o.precision;
  const std::string_view chosen = choose_precision(*mf);  // any_model.hpp: the CLI's rule
  if (prec.empty() || prec == "auto") prec = chosen;
  if (prec != "f32" && prec != "q8_0" && prec != "q4_0" && prec != "mixed")
    return make_error(errc::invalid_argument, "precision must be auto, f32, q8_0, q4_0 or mixed, not '" + std::string(prec) + "'");
  // q8_0 / q4_0 of a file whose matrices all have that type: the mixed engine (the same kernels, in place)
  const bool uniform = (prec == "q8_0" || prec == "q4_0") && prec == chosen;
#if !defined(EDGELM_WEB_CONVERT_ENGINES)
  if ((prec == "q8_0" || prec == "q4_0") && !uniform)
    return make_error(errc::invalid_argument, "precision " + std::string(prec) + " needs a file whose weight matrices are all " + std::string(prec) +
                                                  " (this file's: " + std::string(chosen) + "); this build converts at load only to f32: use auto, mixed or f32");
#endif
  if (o.context > mf->config.seq_len)
    return make_error(errc::invalid_argument, "context " + std::to_string(o.context) + " exceeds the model's " + std::to_string(mf->config.seq_len));
  std::unique_ptr<thread_pool> pool;
  if (o.threads > 1) {
    auto p = thread_pool::create(o.threads);
    if (!p) return p.error();
    pool = std::move(*p);
  }
  if (prec == "f32") return engine_of<f32>::create(std::move(*mf), o, std::move(pool), t0);
#if defined(EDGELM_WEB_CONVERT_ENGINES)
  if (prec == "q8_0" && !uniform) return engine_of<q8_0>::create(std::move(*mf), o, std::move(pool), t0);
  if (prec == "q4_0" && !uniform) return engine_of<q4_0>::create(std::move(*mf), o, std::move(pool), t0);
#endif
  return engine_of<mixed>::create(std::move(*mf), o, std::move(pool), t0, uniform ? (prec == "q8_0" ? q8_0::name : q4_0::name) : mixed::name);
}

}  // namespace edgelm::web

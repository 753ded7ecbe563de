// edgelm/any_model.hpp - one runtime model: the file (its tensor types) and the kernels compiled in choose the
// instantiation at load, so callers do not spell template arguments.
//
//   using runtime = edgelm::basic_any_model<edgelm::backends::highway::kernels, edgelm::kernels::scalar>;
//   auto m = edgelm::load_any<runtime>(edgelm::read_model_path("model.gguf"), {});   // or edgelm::any_model from
//   auto s = edgelm::any_session<runtime>::create(*m, {.context = 512});              // <edgelm/backends/highway.hpp>
//   s->generate("Once upon a time", {.max_tokens = 64}, [](std::string_view p) { ...; return true; });
//   m->visit([](auto& typed) { /* typed is an edgelm::model<P, K>: every typed API (forward, make_state) */ });
//
// The kernel policies form the set's list (the first is the default: name the fastest first); the precision is
// the file's (choose_precision): q8_0 / q4_0 when every weight matrix has that type (used in place, one kernel
// family), f32 when all matrices are float, else mixed (each matrix in its own type). The typed templates
// (edgelm::model<P, K>, session<...>) stay for embedders who want one instantiation (the smallest binary).
#pragma once
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "load.hpp"
#include "session.hpp"

namespace edgelm {

// The precision policy a model file runs best with (its name: "f32", "q8_0", "q4_0" or "mixed"): q8_0 / q4_0
// when every weight matrix has that type (used in place, zero copy), f32 when they are all float (llama2.c
// files, F32/F16/BF16 GGUFs, safetensors), else mixed (llama-quantize's Q4_K_M, a Q4_0 file whose classifier is
// Q6_K, ...: each matrix in its file type).
inline std::string_view choose_precision(const model_file& mf) noexcept {
  if (const auto t = uniform_matrix_type(mf)) {
    if (*t == ggml_type::q8_0) return "q8_0";
    if (*t == ggml_type::q4_0) return "q4_0";
  }
  for (const auto& t : mf.tensors)
    if (t.n_dims >= 2 && t.type != ggml_type::f32 && t.type != ggml_type::f16 && t.type != ggml_type::bf16) return "mixed";
  return "f32";
}

struct any_load_options {
  load_options load;               // log, repack
  std::string precision = "auto";  // auto (choose_precision) | f32 | q8_0 | q4_0 | mixed
  std::string kernels;             // a kernel policy's name (K::name: "highway", "scalar", ...); empty: the set's first
};

namespace detail {
template <class K>
std::string kernel_label() {
  std::string s = K::name;
  if constexpr (requires { K::target(); }) s += std::string("/") + K::target();
  return s;
}
}  // namespace detail

// A loaded model of one of the instantiations model<P, K> (P in f32, q8_0, q4_0, mixed; K in Ks).
// Like edgelm::model it must not move while a session uses it.
template <class... Ks>
class basic_any_model {
  static_assert(sizeof...(Ks) > 0, "basic_any_model needs at least one kernel policy");

 public:
  using variant_type = std::variant<model<f32, Ks>..., model<q8_0, Ks>..., model<q4_0, Ks>..., model<mixed, Ks>...>;

  template <class M, class = std::enable_if_t<!std::is_same_v<std::decay_t<M>, basic_any_model>>>
  explicit basic_any_model(M&& m) : v_(std::in_place_type<std::decay_t<M>>, std::forward<M>(m)) {}

  // f(model<P, K>&): the typed model (forward, make_state, session<...>, perplexity, ...).
  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit(std::forward<F>(f), v_);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit(std::forward<F>(f), v_);
  }

  const model_config& config() const noexcept {
    return visit([](const auto& m) -> const model_config& { return m.config(); });
  }
  const text_tokenizer& tokenizer() const noexcept {
    return visit([](const auto& m) -> const text_tokenizer& { return m.tok; });
  }
  // The parsed file (tensor table, metadata) and its bytes.
  const model_file& file() const noexcept {
    return visit([](const auto& m) -> const model_file& { return m.net.file(); });
  }
  std::string_view precision() const noexcept {
    return visit([](const auto& m) { return policy_traits<typename std::decay_t<decltype(m.net)>::precision_type>::name; });
  }
  // The kernel policy's name ("highway"), and with its run-time target where it has one ("highway/AVX3_ZEN4").
  std::string_view kernels() const noexcept {
    return visit([](const auto& m) -> std::string_view { return std::decay_t<decltype(m.net)>::kernels_type::name; });
  }
  std::string kernel_target() const {
    return visit([](const auto& m) { return detail::kernel_label<typename std::decay_t<decltype(m.net)>::kernels_type>(); });
  }
  // Tensors used in place / converted at load / repacked for the kernels.
  std::size_t tensors_in_place() const noexcept { return visit([](const auto& m) { return m.net.w().in_place; }); }
  std::size_t tensors_converted() const noexcept { return visit([](const auto& m) { return m.net.w().converted; }); }
  std::size_t tensors_repacked() const noexcept { return visit([](const auto& m) { return m.net.w().packed; }); }

  // Names of the kernel policies of this set, '|'-separated ("highway|scalar").
  static std::string kernel_names() {
    std::string s;
    ((s += (s.empty() ? "" : "|") + std::string(Ks::name)), ...);
    return s;
  }
  static bool has_kernels(std::string_view name) noexcept { return ((name == Ks::name) || ...); }

 private:
  variant_type v_;
};

namespace detail {
template <class Set, class P, class K0, class... Ks>
result<Set> load_any_kernels(std::string_view kernels, model_file mf, text_tokenizer tok, const load_options& lo) {
  if (kernels.empty() || kernels == K0::name) {
    auto m = detail::finish_load<P, K0>(std::move(mf), result<text_tokenizer>(std::move(tok)), lo);
    if (!m) return m.error();
    return Set(std::move(*m));
  }
  if constexpr (sizeof...(Ks) > 0) return load_any_kernels<Set, P, Ks...>(kernels, std::move(mf), std::move(tok), lo);
  else return make_error(errc::invalid_argument, "no kernels named '" + std::string(kernels) + "' in this build (" + Set::kernel_names() + ")");
}
template <class Set, class... Ks>
result<Set> load_any_impl(const basic_any_model<Ks...>*, model_file mf, text_tokenizer tok, const any_load_options& o) {
  std::string_view prec = o.precision;
  if (prec.empty() || prec == "auto") prec = choose_precision(mf);
  if (!o.kernels.empty() && !Set::has_kernels(o.kernels))
    return make_error(errc::invalid_argument, "no kernels named '" + o.kernels + "' in this build (" + Set::kernel_names() + ")");
  if (prec == "f32") return load_any_kernels<Set, f32, Ks...>(o.kernels, std::move(mf), std::move(tok), o.load);
  if (prec == "q8_0") return load_any_kernels<Set, q8_0, Ks...>(o.kernels, std::move(mf), std::move(tok), o.load);
  if (prec == "q4_0") return load_any_kernels<Set, q4_0, Ks...>(o.kernels, std::move(mf), std::move(tok), o.load);
  if (prec == "mixed") return load_any_kernels<Set, mixed, Ks...>(o.kernels, std::move(mf), std::move(tok), o.load);
  return make_error(errc::invalid_argument, "precision must be auto, f32, q8_0, q4_0 or mixed, not '" + std::string(prec) + "'");
}
}  // namespace detail

// Load a parsed model file with a tokenizer already built (text_tokenizer{}: id-level use only).
template <class Set>
result<Set> load_any(model_file mf, text_tokenizer tok, const any_load_options& o = {}) {
  return detail::load_any_impl<Set>(static_cast<const Set*>(nullptr), std::move(mf), std::move(tok), o);
}

// Load a parsed model file whose tokenizer is embedded (GGUF).
template <class Set>
result<Set> load_any(result<model_file> mf, const any_load_options& o = {}) {
  if (!mf) return mf.error();
  auto tok = take_embedded_tokenizer(*mf);
  if (!tok) return tok.error();
  return load_any<Set>(std::move(*mf), std::move(*tok), o);
}

// Load a parsed model file with a separate tokenizer file's bytes (a llama2.c tokenizer.bin, a tokenizer.json,
// or a GGUF's vocabulary).
template <class Set>
result<Set> load_any(result<model_file> mf, std::span<const std::byte> tokenizer_bytes, const any_load_options& o = {}) {
  if (!mf) return mf.error();
  auto tok = load_tokenizer_for(*mf, tokenizer_bytes);
  if (!tok) return tok.error();
  return load_any<Set>(std::move(*mf), std::move(*tok), o);
}

#if defined(EDGELM_HAVE_TOKENIZER_JSON)
// By path: a model file or a Hugging Face folder, with its tokenizer found as the CLI finds it: tokenizer_path
// when given (a tokenizer.bin, tokenizer.json or GGUF), else the folder's tokenizer.json (a folder without one
// loads for id-level use when allow_no_tokenizer, as does a GGUF without a vocabulary), else the file's own (GGUF).
template <class Set>
result<Set> load_any_path(const std::string& path, const std::string& tokenizer_path = {}, const any_load_options& o = {},
                          bool allow_no_tokenizer = false) {
  auto mf = read_model_path(path);
  if (!mf) return mf.error();
  if (!tokenizer_path.empty()) {
    auto ts = file_storage::open(tokenizer_path);
    if (!ts) return ts.error();
    return load_any<Set>(std::move(mf), ts->bytes(), o);
  }
  if (is_directory(path)) {
    auto b = open_hf_folder(path);
    if (!b) return b.error();
    if (!b->contains("tokenizer.json") && allow_no_tokenizer) return load_any<Set>(std::move(*mf), text_tokenizer{}, o);
    auto tok = load_bundle_tokenizer(*b);
    if (!tok) return tok.error();
    return load_any<Set>(std::move(*mf), std::move(*tok), o);
  }
  if (mf->tokenizer.pieces.empty() && allow_no_tokenizer) return load_any<Set>(std::move(*mf), text_tokenizer{}, o);  // (a GGUF without a vocabulary)
  return load_any<Set>(std::move(mf), o);
}
#endif

// A session over a basic_any_model: the typed session<model<P, K>> of the model's instantiation behind the
// same calls (session.hpp documents each). The model must outlive the session and must not move.
template <class Set>
class any_session;
template <class... Ks>
class any_session<basic_any_model<Ks...>> {
  template <class V>
  struct sessions_of;
  template <class... Ms>
  struct sessions_of<std::variant<Ms...>> {
    using type = std::variant<session<Ms>...>;
  };

 public:
  using model_type = basic_any_model<Ks...>;
  using variant_type = typename sessions_of<typename model_type::variant_type>::type;

  static result<any_session> create(const model_type& m, const session_options& o = {}) {
    return m.visit([&](const auto& typed) -> result<any_session> {
      auto s = session<std::decay_t<decltype(typed)>>::create(typed, o);
      if (!s) return s.error();
      return any_session(std::move(*s));
    });
  }

  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit(std::forward<F>(f), v_);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit(std::forward<F>(f), v_);
  }

  const std::vector<std::int32_t>& tokens() const noexcept {
    return visit([](const auto& s) -> const std::vector<std::int32_t>& { return s.tokens(); });
  }
  std::uint32_t context() const noexcept { return visit([](const auto& s) { return s.context(); }); }
  std::span<const float> logits() const noexcept { return visit([](const auto& s) { return s.logits(); }); }
  std::uint32_t reused_tokens() const noexcept { return visit([](const auto& s) { return s.reused_tokens(); }); }
  std::size_t pending() const noexcept { return visit([](const auto& s) { return s.pending(); }); }
  std::size_t kv_bytes() const noexcept { return visit([](const auto& s) { return s.state().kv_bytes(); }); }
  std::size_t state_bytes() const noexcept { return visit([](const auto& s) { return s.state().bytes(); }); }

  result<void> set_tokens(std::span<const std::int32_t> ids) { return visit([&](auto& s) { return s.set_tokens(ids); }); }
  result<void> begin_tokens(std::span<const std::int32_t> ids) { return visit([&](auto& s) { return s.begin_tokens(ids); }); }
  result<bool> prefill(std::chrono::microseconds budget = std::chrono::microseconds{0}) {
    return visit([&](auto& s) { return s.prefill(budget); });
  }
  result<void> prompt(std::string_view text, bool parse_special = true) { return visit([&](auto& s) { return s.prompt(text, parse_special); }); }
  result<void> begin_prompt(std::string_view text, bool parse_special = true) {
    return visit([&](auto& s) { return s.begin_prompt(text, parse_special); });
  }
  result<void> prompt_rendered(std::string_view text) { return visit([&](auto& s) { return s.prompt_rendered(text); }); }
  result<void> feed(std::int32_t t) { return visit([&](auto& s) { return s.feed(t); }); }
  void reset_sampler(const sampling_options& o) {
    visit([&](auto& s) { s.reset_sampler(o); });
  }
  void clear() noexcept {
    visit([](auto& s) { s.clear(); });
  }
  void set_stops(std::vector<std::int32_t> tokens, std::vector<std::string> strings) {
    visit([&](auto& s) { s.set_stops(std::move(tokens), std::move(strings)); });
  }
  void set_logprobs(std::uint32_t n) noexcept {
    visit([&](auto& s) { s.set_logprobs(n); });
  }
  result<step_result> step(std::chrono::microseconds budget = std::chrono::microseconds{0}) {
    return visit([&](auto& s) { return s.step(budget); });
  }
  template <class F>
  result<generation_stats> generate(std::string_view prompt_text, const generate_options& o, F&& on_piece) {
    return visit([&](auto& s) { return s.generate(prompt_text, o, on_piece); });
  }
  template <class F>
  result<generation_stats> continue_generation(const generate_options& o, F&& on_piece) {
    return visit([&](auto& s) { return s.continue_generation(o, on_piece); });
  }

 private:
  template <class S>
  explicit any_session(S&& s) : v_(std::in_place_type<std::decay_t<S>>, std::forward<S>(s)) {}
  variant_type v_;
};

}  // namespace edgelm

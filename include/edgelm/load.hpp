// edgelm/load.hpp - storage -> model: detects the format, reads it, binds the weights, builds the tokenizer.
// A Hugging Face folder (a bundle of named storages, or a path) loads the same way: read_model_path, load(bundle).
#pragma once
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/log.hpp"
#include "core/result.hpp"
#include "formats/detect.hpp"
#include "formats/gguf.hpp"
#include "formats/llama2c.hpp"
#include "formats/model_file.hpp"
#include "model/transformer.hpp"
#include "storage/bundle.hpp"
#include "storage/file_storage.hpp"
#include "storage/storage.hpp"
#include "tokenizer/sentencepiece.hpp"
#include "tokenizer/text_tokenizer.hpp"
// Hugging Face folders (safetensors + config.json) need nlohmann/json, as tokenizer.json does.
#if defined(EDGELM_HAVE_TOKENIZER_JSON)
#include "formats/hf_config.hpp"
#include "formats/hf_folder.hpp"
#include "formats/hf_model.hpp"
#include "formats/safetensors.hpp"
#endif

namespace edgelm {

struct load_options {
  logger log;  // receives one line per converted tensor and a summary
  // Let the kernel policy repack the weight matrices into its own layout at load where that makes
  // it faster (today: the x86 AVX-512 VNNI paths, q8_0 / q4_0); the file's pages are given back, so
  // memory stays one copy. false: every in-place matrix stays a zero-copy view of the (mapped) file.
  bool repack = true;
};

// A transformer together with its tokenizer (SentencePiece-style or byte-level BPE, text_tokenizer.hpp).
template <weight_policy P, class K = kernels::scalar>
struct model {
  transformer<P, K> net;
  edgelm::text_tokenizer tok;

  const model_config& config() const noexcept { return net.config(); }
};

// Parse a model file (GGUF, llama2.c .bin), found by its content (formats/detect.hpp), without binding weights.
// Bytes of no known format are errc::bad_magic. A safetensors file alone has no hyper-parameters: read its folder
// (read_model_path, read_hf_model) instead.
template <storage S>
result<model_file> read_model_file(S s) {
  auto owner = detail::own_bytes(std::move(s));
  auto f = detect_format(owner->bytes());
  if (!f) return f.error();
  switch (*f) {
    case file_format::gguf: return read_gguf_concatenated(std::move(owner));  // (a whole file, or a split's parts end to end)
    case file_format::llama2c: return read_llama2c(std::move(owner));
    case file_format::safetensors: break;
  }
  // (not parsed here: the safetensors reader stays out of builds that only read GGUF, e.g. the web engine)
  return make_error(errc::missing_key, "a safetensors file holds no hyper-parameters: load its folder (config.json + model.safetensors)", error::no_offset,
                    "config.json");
}

// A tokenizer file: llama2.c tokenizer.bin, or the vocabulary embedded in a GGUF.
// expected_vocab (0: any) must match the model's vocabulary when given.
inline result<tokenizer> load_tokenizer(std::span<const std::byte> bytes, std::uint32_t expected_vocab = 0) {
  auto td = is_gguf(bytes) ? read_gguf_tokenizer(bytes) : read_llama2c_tokenizer(bytes, expected_vocab);
  if (!td) return td.error();
  if (expected_vocab != 0 && td->pieces.size() != expected_vocab)
    return make_error(errc::bad_tokenizer, "tokenizer has " + std::to_string(td->pieces.size()) + " tokens, the model " + std::to_string(expected_vocab));
  return tokenizer::from_data(std::move(*td));
}

// The tokenizer of a model from a separate file's bytes: a GGUF's vocabulary, a tokenizer.json, or a llama2.c
// tokenizer.bin (whose layout depends on the model's vocabulary size).
inline result<text_tokenizer> load_tokenizer_for(const model_file& mf, std::span<const std::byte> bytes) {
  if (is_gguf(bytes) || detail::starts_json_object(bytes)) return load_text_tokenizer(bytes);
  auto t = load_tokenizer(bytes, mf.config.vocab_size);
  if (!t) return t.error();
  return text_tokenizer(std::move(*t));
}

namespace detail {
template <weight_policy P, class K>
result<model<P, K>> finish_load(model_file mf, result<text_tokenizer> tok, const load_options& o) {
  if (!tok) return tok.error();
  // The model's vocabulary may be padded past the tokenizer's (Qwen2.5: 151,936 rows for 151,665 tokens; Phi,
  // Pythia: rounded up to a multiple of 64 or 128): those rows are never produced by encoding and decode to "".
  // A tokenizer with ids the model does not have is refused.
  if (tok->vocab_size() > mf.config.vocab_size)
    return make_error(errc::bad_tokenizer, "tokenizer has " + std::to_string(tok->vocab_size()) + " tokens, more than the model's " + std::to_string(mf.config.vocab_size));
  auto net = transformer<P, K>::from_file(std::move(mf), o.log, o.repack);
  if (!net) return net.error();
  model<P, K> m{std::move(*net), std::move(*tok)};
  // One summary line: what ran in place and what was converted from which file type.
  if (!o.log.fn) return m;
  std::string from;
  for (std::uint32_t t = 0; t < ggml_type_count; ++t)
    if (const auto n = m.net.w().converted_from[t])
      from += (from.empty() ? "" : ", ") + std::string(ggml_type_name(static_cast<ggml_type>(t))) + " x" + std::to_string(n);
  std::string as;
  for (std::uint32_t t = 0; t < ggml_type_count; ++t)
    if (const auto n = m.net.w().in_place_as[t]) as += (as.empty() ? "" : ", ") + std::string(ggml_type_name(static_cast<ggml_type>(t))) + " x" + std::to_string(n);
  o.log(log_level::info, "weights as " + std::string(policy_traits<P>::name) + ": " + std::to_string(m.net.w().in_place) + " tensors used in place" +
                             (as.empty() ? "" : " (matrices: " + as + ")") + ", " +
                             std::to_string(m.net.w().converted) + " converted at load" + (from.empty() ? "" : " (from " + from + ")") +
                             (m.net.w().packed ? ", " + std::to_string(m.net.w().packed) + " repacked for the " + K::name + " kernels" : ""));
  return m;
}
}  // namespace detail

// The one ggml type every weight matrix (2-D tensor) of the file has, if they all share one: a model of that
// precision runs such a file entirely in place (e.g. q8_0 for a uniform Q8_0 GGUF).
inline std::optional<ggml_type> uniform_matrix_type(const model_file& mf) noexcept {
  std::optional<ggml_type> common;
  for (const auto& t : mf.tensors) {
    if (t.n_dims < 2) continue;
    if (common && *common != t.type) return std::nullopt;
    common = t.type;
  }
  return common;
}

// The tokenizer a parsed file embeds (GGUF), moved out of it (the weights do not need it).
inline result<text_tokenizer> take_embedded_tokenizer(model_file& mf) {
  if (mf.tokenizer.pieces.empty())
    return make_error(errc::bad_tokenizer, mf.format == file_format::llama2c ? "a llama2.c checkpoint needs a tokenizer file" : "the file holds no tokenizer");
  return text_tokenizer::from_data(std::move(mf.tokenizer));
}

// Load from an already parsed file whose tokenizer is embedded (GGUF).
template <weight_policy P, class K = kernels::scalar>
result<model<P, K>> load(model_file mf, const load_options& o = {}) {
  auto tok = take_embedded_tokenizer(mf);
  return detail::finish_load<P, K>(std::move(mf), std::move(tok), o);
}

// Load from an already parsed file with a separate tokenizer file (llama2.c .bin + tokenizer.bin, or any
// model + a GGUF vocabulary or a tokenizer.json).
template <weight_policy P, class K = kernels::scalar, storage T>
result<model<P, K>> load(model_file mf, const T& tokenizer_storage, const load_options& o = {}) {
  auto tok = load_tokenizer_for(mf, tokenizer_storage.bytes());
  return detail::finish_load<P, K>(std::move(mf), std::move(tok), o);
}

// Load from an already parsed file with a tokenizer already built. An empty text_tokenizer{} loads the model
// for id-level use only (forward over ids: logits, perplexity of ids); encode/decode then give nothing.
template <weight_policy P, class K = kernels::scalar>
result<model<P, K>> load(model_file mf, text_tokenizer tok, const load_options& o = {}) {
  return detail::finish_load<P, K>(std::move(mf), result<text_tokenizer>(std::move(tok)), o);
}

#if defined(EDGELM_HAVE_TOKENIZER_JSON)
// The tokenizer of a Hugging Face folder: tokenizer.json (+ tokenizer_config.json when present);
// errc::bad_tokenizer when the bundle has no tokenizer.json.
inline result<text_tokenizer> load_bundle_tokenizer(const bundle& b) {
  auto tj = b.find("tokenizer.json");
  if (!tj) return make_error(errc::bad_tokenizer, "the folder has no tokenizer.json", error::no_offset, "tokenizer.json");
  auto cfg = b.find("tokenizer_config.json");
  return load_text_tokenizer(tj->bytes(), cfg ? cfg->bytes() : std::span<const std::byte>{});
}

// Load a Hugging Face model (config.json + safetensors) with its tokenizer.json, all from one bundle.
template <weight_policy P, class K = kernels::scalar>
result<model<P, K>> load(const bundle& b, const load_options& o = {}) {
  auto mf = read_hf_model(b);
  if (!mf) return mf.error();
  return detail::finish_load<P, K>(std::move(*mf), load_bundle_tokenizer(b), o);
}

// A model file or a Hugging Face model folder, by path (a folder: read_hf_folder).
namespace detail {
// "PREFIX-00001-of-00003.gguf" (llama.cpp's split names): the part number and count, or nothing.
inline std::optional<std::pair<unsigned, unsigned>> split_name(const std::string& path, std::string& prefix) {
  constexpr std::size_t tail = std::string_view("-00001-of-00003.gguf").size();
  if (path.size() <= tail) return std::nullopt;
  const std::string t = path.substr(path.size() - tail);
  auto digits = [&](std::size_t at) {
    unsigned v = 0;
    for (std::size_t i = at; i < at + 5; ++i) {
      if (t[i] < '0' || t[i] > '9') return 0u;
      v = v * 10 + static_cast<unsigned>(t[i] - '0');
    }
    return v;
  };
  if (t[0] != '-' || t.compare(6, 4, "-of-") != 0 || t.compare(15, 5, ".gguf") != 0) return std::nullopt;
  const unsigned no = digits(1), count = digits(10);
  if (no == 0 || count == 0 || no > count) return std::nullopt;
  prefix = path.substr(0, path.size() - tail);
  return std::pair{no, count};
}
inline std::string split_part_name(const std::string& prefix, unsigned no, unsigned count) {
  auto five = [](unsigned v) {
    std::string d = std::to_string(v);
    return std::string(d.size() < 5 ? 5 - d.size() : 0, '0') + d;
  };
  return prefix + "-" + five(no) + "-of-" + five(count) + ".gguf";
}
}  // namespace detail

// A model by path: a Hugging Face folder, a model file (format by content), or the first part of a GGUF split
// by llama.cpp's gguf-split (NAME-00001-of-0000N.gguf: the other parts are opened beside it).
inline result<model_file> read_model_path(const std::string& path) {
  if (is_directory(path)) return read_hf_folder(path);
  auto fs = file_storage::open(path);
  if (!fs) return fs.error();
  std::string prefix;
  const auto sp = detail::split_name(path, prefix);
  if (sp && sp->first == 1 && sp->second > 1 && is_gguf(fs->bytes())) {
    std::vector<std::shared_ptr<detail::byte_owner>> parts;
    parts.push_back(detail::own_bytes(std::move(*fs)));
    for (unsigned i = 2; i <= sp->second; ++i) {
      const std::string name = detail::split_part_name(prefix, i, sp->second);
      auto part = file_storage::open(name);
      if (!part) return make_error(part.error().code, "GGUF part " + std::to_string(i) + " of " + std::to_string(sp->second) + ": " + part.error().msg, error::no_offset, name);
      parts.push_back(detail::own_bytes(std::move(*part)));
    }
    return read_gguf_split(std::move(parts));
  }
  return read_model_file(std::move(*fs));
}
#endif

// Load a model whose file carries its tokenizer (GGUF).
template <weight_policy P, class K = kernels::scalar, storage S>
result<model<P, K>> load(S s, const load_options& o = {}) {
  auto mf = read_model_file(std::move(s));
  if (!mf) return mf.error();
  return load<P, K>(std::move(*mf), o);
}

// Load a model with a separate tokenizer file.
template <weight_policy P, class K = kernels::scalar, storage S, storage T>
result<model<P, K>> load(S s, const T& tokenizer_storage, const load_options& o = {}) {
  auto mf = read_model_file(std::move(s));
  if (!mf) return mf.error();
  return load<P, K>(std::move(*mf), tokenizer_storage, o);
}

}  // namespace edgelm

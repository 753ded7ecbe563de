// edgelm/formats/llama2c.hpp - llama2.c checkpoints (legacy .bin: 7 x int32 header, then float32
// weights in run.c order) and llama2.c tokenizer files.
#pragma once
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "../core/checked.hpp"
#include "../core/reader.hpp"
#include "../core/result.hpp"
#include "model_file.hpp"

namespace edgelm {

// Parse a llama2.c .bin. Tensors are exposed under GGUF's llama names, as views into the file.
// A negative vocab size in the header means the classifier is stored separately (unshared).
inline result<model_file> read_llama2c(std::shared_ptr<detail::byte_owner> owner) {
  using namespace detail;
  const auto bytes = owner->bytes();
  byte_reader r(bytes);
  std::int32_t h[7];
  for (auto& v : h)
    if (!r.read(v)) return r.fail(errc::truncated, "file shorter than the llama2.c header");
  static const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  static const std::uint64_t max[7] = {limits::max_dim, 4 * limits::max_dim, limits::max_layers, limits::max_dim,
                                       limits::max_dim, limits::max_vocab, limits::max_context};
  for (int k = 0; k < 7; ++k) {
    std::int64_t v = h[k];
    if (k == 5 && v < 0) v = -v;  // negative vocab: unshared classifier
    if (v < 0) return make_error(errc::negative_size, std::string(names[k]) + " is negative", 4u * k, names[k]);
    // a vocabulary needs at least unk, bos and eos
    if (v == 0 || static_cast<std::uint64_t>(v) > max[k] || (k == 5 && v < 3))
      return make_error(errc::absurd_dimension, std::string(names[k]) + " = " + std::to_string(v) + " is out of range", 4u * k, names[k]);
  }
  model_file mf;
  mf.format = file_format::llama2c;
  model_config& c = mf.config;
  c.arch = "llama";
  c.dim = static_cast<std::uint32_t>(h[0]);
  c.hidden_dim = static_cast<std::uint32_t>(h[1]);
  c.n_layers = static_cast<std::uint32_t>(h[2]);
  c.n_heads = static_cast<std::uint32_t>(h[3]);
  c.n_kv_heads = static_cast<std::uint32_t>(h[4]);
  c.shared_classifier = h[5] > 0;
  c.vocab_size = static_cast<std::uint32_t>(h[5] > 0 ? h[5] : -static_cast<std::int64_t>(h[5]));
  c.seq_len = static_cast<std::uint32_t>(h[6]);
  if (c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0 || c.n_kv_heads > c.n_heads)
    return make_error(errc::bad_config, "dim must divide by n_heads and n_heads by n_kv_heads");
  c.head_dim = c.dim / c.n_heads;
  if (c.head_dim % 2 != 0) return make_error(errc::bad_config, "head dimension must be even for RoPE");

  const std::uint64_t D = c.dim, H = c.hidden_dim, L = c.n_layers, V = c.vocab_size, KVD = c.kv_dim(), S = c.seq_len,
                      HS = c.head_dim;
  std::uint64_t off = 28;
  bool ovf = false;
  auto add = [&](std::string name, std::uint64_t ne0, std::uint64_t ne1, std::uint32_t n_dims) {
    tensor_info t;
    t.name = std::move(name);
    t.type = ggml_type::f32;
    t.n_dims = n_dims;
    t.ne = {ne0, ne1, 1, 1};
    t.offset = off;
    std::uint64_t n = 0;
    ovf |= !mul_ok(ne0, ne1, n) || !mul_ok(n, 4, t.n_bytes) || !add_ok(off, t.n_bytes, off);
    mf.tensors.push_back(std::move(t));
  };
  // run.c order: every tensor of a kind for all layers, then the next kind.
  add("token_embd.weight", D, V, 2);
  auto per_layer = [&](const char* suffix, std::uint64_t ne0, std::uint64_t ne1, std::uint32_t nd) {
    for (std::uint64_t l = 0; l < L; ++l) add("blk." + std::to_string(l) + "." + suffix, ne0, ne1, nd);
  };
  per_layer("attn_norm.weight", D, 1, 1);
  per_layer("attn_q.weight", D, D, 2);
  per_layer("attn_k.weight", D, KVD, 2);
  per_layer("attn_v.weight", D, KVD, 2);
  per_layer("attn_output.weight", D, D, 2);
  per_layer("ffn_norm.weight", D, 1, 1);
  per_layer("ffn_gate.weight", D, H, 2);
  per_layer("ffn_down.weight", H, D, 2);
  per_layer("ffn_up.weight", D, H, 2);
  add("output_norm.weight", D, 1, 1);
  // freq_cis_real / freq_cis_imag (unused: RoPE is recomputed), seq_len * head_size/2 floats each.
  std::uint64_t freq = 0;
  ovf |= !mul_ok(S, HS, freq) || !mul_ok(freq, 4, freq) || !add_ok(off, freq, off);
  if (!c.shared_classifier) add("output.weight", D, V, 2);
  if (ovf) return make_error(errc::overflow, "weight sizes overflow");
  if (off > bytes.size())
    return make_error(errc::truncated, "file holds " + std::to_string(bytes.size()) + " bytes, the header needs " + std::to_string(off), bytes.size());
  for (auto& t : mf.tensors) t.data = bytes.data() + t.offset;
  mf.bytes = std::move(owner);
  return mf;
}

// Parse a llama2.c tokenizer.bin: int32 max_token_length, then per token {float score, int32 len,
// len bytes}. The file does not store the count: `expected_vocab` (0 = read to the end) checks it.
inline result<tokenizer_data> read_llama2c_tokenizer(std::span<const std::byte> bytes, std::uint32_t expected_vocab = 0) {
  using namespace detail;
  byte_reader r(bytes);
  tokenizer_data td;
  std::int32_t max_len = 0;
  if (!r.read(max_len)) return r.fail(errc::truncated, "tokenizer file shorter than its header");
  if (max_len < 0) return make_error(errc::negative_size, "max_token_length is negative", 0);
  if (max_len == 0 || static_cast<std::uint64_t>(max_len) > limits::max_token_bytes)
    return make_error(errc::bad_tokenizer, "max_token_length " + std::to_string(max_len) + " is out of range", 0);
  td.max_token_length = static_cast<std::uint32_t>(max_len);
  while (r.left() > 0 && (expected_vocab == 0 || td.pieces.size() < expected_vocab)) {
    const std::uint64_t at = r.pos();
    const std::string where = "token " + std::to_string(td.pieces.size());
    if (td.pieces.size() >= limits::max_vocab) return make_error(errc::count_too_large, "more tokens than EDGELM_MAX_VOCAB", at);
    float score = 0;
    std::int32_t len = 0;
    if (!r.read(score) || !r.read(len)) return make_error(errc::truncated, "token entry cut off", at, where);
    if (!std::isfinite(score)) return make_error(errc::bad_value, "token score is not finite", at, where);
    if (len < 0) return make_error(errc::negative_size, "token length is negative", at + 4, where);
    if (len == 0) return make_error(errc::bad_tokenizer, "token piece is empty", at + 4, where);
    if (len > max_len) return make_error(errc::bad_tokenizer, "token piece longer than max_token_length", at + 4, where);
    std::string_view piece;
    if (!r.view(static_cast<std::uint64_t>(len), piece)) return make_error(errc::truncated, "token piece cut off", at + 8, where);
    td.pieces.emplace_back(piece);
    td.scores.push_back(score);
  }
  if (expected_vocab != 0 && td.pieces.size() != expected_vocab)
    return make_error(errc::bad_tokenizer, "tokenizer has " + std::to_string(td.pieces.size()) + " tokens, the model needs " + std::to_string(expected_vocab),
                      bytes.size());
  if (td.pieces.size() < 3) return make_error(errc::bad_tokenizer, "tokenizer has fewer than 3 tokens", bytes.size());
  // llama2.c files carry no token types: infer SentencePiece's (unk 0, bos 1, eos 2, <0xHH> bytes).
  td.types.assign(td.pieces.size(), token_type::normal);
  td.types[0] = token_type::unknown;
  td.types[1] = token_type::control;
  td.types[2] = token_type::control;
  for (std::size_t k = 3; k < td.pieces.size(); ++k) {
    const std::string& p = td.pieces[k];
    if (p.size() == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>' && std::isxdigit(static_cast<unsigned char>(p[3])) &&
        std::isxdigit(static_cast<unsigned char>(p[4])))
      td.types[k] = token_type::byte;
  }
  td.bos_id = 1;
  td.eos_id = 2;
  td.unk_id = 0;
  return td;
}

}  // namespace edgelm

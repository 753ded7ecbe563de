// tests/fuzz/fuzz_common.hpp - what every fuzz target checks after a reader accepted its input.
// A broken promise is a finding: __builtin_trap() makes libFuzzer save the input as a crash.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <edgelm/load.hpp>

#define EDGELM_FUZZ_ASSERT(cond) \
  do {                           \
    if (!(cond)) __builtin_trap(); \
  } while (0)

namespace edgelm_fuzz {

inline std::span<const std::byte> as_bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

// Every tensor view lies inside the file; reading its first and last byte lets ASan prove it.
inline void check_tensors(const std::vector<edgelm::tensor_info>& ts, std::span<const std::byte> file) {
  for (const auto& t : ts) {
    EDGELM_FUZZ_ASSERT(t.n_bytes > 0 && t.offset <= file.size() && t.n_bytes <= file.size() - t.offset);
    EDGELM_FUZZ_ASSERT(t.data == file.data() + t.offset);
    volatile std::byte first = t.data[0], last = t.data[t.n_bytes - 1];
    (void)first;
    (void)last;
  }
}

inline void check_tokenizer_data(const edgelm::tokenizer_data& t) {
  const auto n = t.pieces.size();
  EDGELM_FUZZ_ASSERT(n >= 3 && n <= edgelm::limits::max_vocab);
  EDGELM_FUZZ_ASSERT(t.scores.size() == n && t.types.size() == n);
  for (auto id : {t.bos_id, t.eos_id, t.unk_id}) EDGELM_FUZZ_ASSERT(id >= 0 && static_cast<std::size_t>(id) < n);
}

// What read_gguf / read_llama2c promise a loader.
inline void check_model_file(const edgelm::model_file& mf) {
  const auto& c = mf.config;
  check_tensors(mf.tensors, mf.bytes->bytes());
  EDGELM_FUZZ_ASSERT(c.dim > 0 && c.dim <= edgelm::limits::max_dim);
  EDGELM_FUZZ_ASSERT(c.n_layers > 0 && c.n_layers <= edgelm::limits::max_layers);
  EDGELM_FUZZ_ASSERT(c.vocab_size > 0 && c.vocab_size <= edgelm::limits::max_vocab);
  EDGELM_FUZZ_ASSERT(c.seq_len > 0 && c.seq_len <= edgelm::limits::max_context);
  EDGELM_FUZZ_ASSERT(c.n_heads > 0 && c.n_kv_heads > 0 && c.dim % c.n_heads == 0 && c.n_heads % c.n_kv_heads == 0);
  EDGELM_FUZZ_ASSERT(c.head_dim * c.n_heads == c.dim && c.head_dim % 2 == 0);
  if (!mf.tokenizer.pieces.empty()) {
    check_tokenizer_data(mf.tokenizer);
    EDGELM_FUZZ_ASSERT(mf.tokenizer.pieces.size() == c.vocab_size);
  }
}

// Encode `text` and decode the ids again; every id must be inside the vocabulary.
inline std::vector<edgelm::tokenizer::token> encode_decode(const edgelm::tokenizer& tok, std::string_view text) {
  auto ids = tok.encode(text, true);
  EDGELM_FUZZ_ASSERT(!ids.empty() && ids[0] == tok.bos());
  for (auto id : ids) EDGELM_FUZZ_ASSERT(id >= 0 && static_cast<std::size_t>(id) < tok.vocab_size());
  volatile std::size_t n = tok.decode(ids).size();
  (void)n;
  return ids;
}

// The same through the facade a model carries (special tokens in the text parsed, and not).
inline std::vector<edgelm::text_tokenizer::token> encode_decode(const edgelm::text_tokenizer& tok, std::string_view text) {
  for (bool parse : {false, true}) {
    auto ids = tok.encode(text, true, parse);
    if (tok.add_bos()) EDGELM_FUZZ_ASSERT(!ids.empty() && ids[0] == tok.bos_id());
    for (auto id : ids) EDGELM_FUZZ_ASSERT(id >= 0 && static_cast<std::size_t>(id) < tok.vocab_size());
    volatile std::size_t n = tok.decode(ids).size();
    (void)n;
    if (parse) {
      if (ids.empty() && tok.bos()) ids.push_back(tok.bos_id());
      return ids;
    }
  }
  return {};
}

// A loaded model must run: two positions of the forward pass on token ids it accepts.
template <class M>
void run_model(const M& m, std::string_view text) {
  auto ids = encode_decode(m.tok, text.substr(0, 64));
  auto st = m.net.make_state(2);
  if (!st) return;  // out_of_memory is an allowed answer
  for (std::uint32_t pos = 0; pos < 2 && pos < ids.size(); ++pos) {
    auto logits = m.net.forward(*st, ids[pos], pos);
    EDGELM_FUZZ_ASSERT(logits.size() == m.config().vocab_size);
  }
}

}  // namespace edgelm_fuzz

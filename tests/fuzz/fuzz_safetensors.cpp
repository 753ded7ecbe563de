// tests/fuzz/fuzz_safetensors.cpp - libFuzzer target: safetensors bytes through parse_safetensors, the format
// detection, and (as the model.safetensors of a bundle with a fixed tiny llama config.json, the shape of the seeds)
// read_hf_model, the f32 binder and two forward positions. Whatever is accepted must keep its promises: tensor
// views inside the file, shapes that match the bytes, a model that runs.
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-exceptions -I include -I tests \
//     tests/fuzz/fuzz_safetensors.cpp -o fuzz_safetensors
//   ./fuzz_safetensors -dict=tests/fuzz/safetensors.dict -max_len=65536 corpus_dir tests/fuzz/corpus/fuzz_safetensors
#include <cstddef>
#include <cstdint>
#include <string>

#include <edgelm/formats/detect.hpp>
#include <edgelm/formats/hf_model.hpp>
#include <edgelm/formats/safetensors.hpp>
#include <edgelm/load.hpp>

#include "fuzz_common.hpp"

namespace {
// tests/fuzz/model_builders.hpp's tiny_hf{} (the seeds' model): dim 8, ffn 12, 2 layers, 2 heads over 1 KV head, vocab 10.
constexpr const char* config_json =
    R"({"model_type": "llama", "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "vocab_size": 10, "max_position_embeddings": 32, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": false})";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace edgelm_fuzz;
  const auto bytes = as_bytes(data, size);
  auto st = edgelm::parse_safetensors(bytes);
  auto fmt = edgelm::detect_format(bytes);
  if (st) {
    EDGELM_FUZZ_ASSERT(fmt && *fmt == edgelm::file_format::safetensors);  // what parses is detected as such
    std::uint64_t total = st->data_offset;
    for (const auto& t : st->tensors) {
      EDGELM_FUZZ_ASSERT(t.offset >= st->data_offset && t.offset <= size && t.n_bytes <= size - t.offset);
      EDGELM_FUZZ_ASSERT(t.data == bytes.data() + t.offset && t.n_dims <= 4);
      EDGELM_FUZZ_ASSERT(t.n_elements() * (t.type == edgelm::ggml_type::f32 ? 4u : 2u) == t.n_bytes);
      if (t.n_bytes) {
        volatile std::byte first = t.data[0], last = t.data[t.n_bytes - 1];
        (void)first, (void)last;
      }
      total += t.n_bytes;
    }
    EDGELM_FUZZ_ASSERT(total == size);  // the tensors tile the data exactly
  } else {
    EDGELM_FUZZ_ASSERT(st.error().code != edgelm::errc::ok);
  }

  edgelm::bundle b;
  b.add("config.json", edgelm::memory_storage::borrow({reinterpret_cast<const std::byte*>(config_json), std::char_traits<char>::length(config_json)}));
  b.add("model.safetensors", edgelm::memory_storage::borrow(bytes));
  auto mf = edgelm::read_hf_model(b);
  if (!mf) return 0;
  EDGELM_FUZZ_ASSERT(st.has_value());
  for (const auto& t : mf->tensors) EDGELM_FUZZ_ASSERT(t.name.rfind("blk.", 0) == 0 || t.name == "token_embd.weight" || t.name == "output_norm.weight" || t.name == "output.weight");
  auto m = edgelm::load<edgelm::f32>(std::move(*mf), edgelm::text_tokenizer{});
  if (!m) return 0;  // e.g. a matrix of the wrong shape: the binder's error
  auto s = m->net.make_state(4);
  if (!s) return 0;
  for (std::uint32_t pos = 0; pos < 2; ++pos) {
    auto logits = m->net.forward(*s, static_cast<std::int32_t>(pos * 7 % 10), pos);
    EDGELM_FUZZ_ASSERT(logits.size() == 10);
  }
  return 0;
}

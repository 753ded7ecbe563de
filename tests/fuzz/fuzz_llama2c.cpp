// tests/fuzz/fuzz_llama2c.cpp - libFuzzer target: llama2.c checkpoints through read_llama2c, then the
// loader with a generated tokenizer of the header's vocabulary size and a forward pass.
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-exceptions -I include \
//     tests/fuzz/fuzz_llama2c.cpp -o fuzz_llama2c
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <edgelm/formats/llama2c.hpp>
#include <edgelm/load.hpp>

#include "fuzz_common.hpp"

namespace {
// A llama2.c tokenizer file with `n` pieces: unk, bos, eos, then short distinct pieces.
std::vector<std::byte> tokenizer_file(std::uint32_t n) {
  std::vector<std::byte> b;
  auto put = [&](const void* p, std::size_t k) {
    const auto* c = static_cast<const std::byte*>(p);
    b.insert(b.end(), c, c + k);
  };
  const std::int32_t max_len = 8;
  put(&max_len, 4);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::string p = i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : (i % 2 ? " " : "") + std::to_string(i);
    const float score = -static_cast<float>(i);
    const auto len = static_cast<std::int32_t>(p.size());
    put(&score, 4);
    put(&len, 4);
    put(p.data(), p.size());
  }
  return b;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace edgelm_fuzz;
  const auto bytes = as_bytes(data, size);
  auto mf = edgelm::read_llama2c(edgelm::detail::own_bytes(edgelm::memory_storage::borrow(bytes)));
  if (!mf) return 0;
  check_model_file(*mf);
  if (mf->config.vocab_size > 4096) return 0;  // a valid file that large cannot fit max_len anyway
  const auto tok = tokenizer_file(mf->config.vocab_size);
  auto m = edgelm::load<edgelm::f32>(edgelm::memory_storage::borrow(bytes),
                                     edgelm::memory_storage::borrow({tok.data(), tok.size()}));
  EDGELM_FUZZ_ASSERT(m.has_value());  // read_llama2c accepted it, so binding the weights must too
  run_model(*m, "13 5 7");
  return 0;
}

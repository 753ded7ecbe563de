// tests/fuzz/fuzz_llama2c_tokenizer.cpp - libFuzzer target: llama2.c tokenizer.bin bytes through
// read_llama2c_tokenizer (any count, and the count it found), tokenizer::from_data and encode/decode.
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-exceptions -I include \
//     tests/fuzz/fuzz_llama2c_tokenizer.cpp -o fuzz_llama2c_tokenizer
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <edgelm/formats/llama2c.hpp>
#include <edgelm/tokenizer/sentencepiece.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace edgelm_fuzz;
  const auto bytes = as_bytes(data, size);
  auto td = edgelm::read_llama2c_tokenizer(bytes);
  if (!td) return 0;
  check_tokenizer_data(*td);
  for (const auto& p : td->pieces) EDGELM_FUZZ_ASSERT(!p.empty() && p.size() <= td->max_token_length);
  const auto n = static_cast<std::uint32_t>(td->pieces.size());
  auto again = edgelm::read_llama2c_tokenizer(bytes, n);  // the count it found must be accepted
  EDGELM_FUZZ_ASSERT(again.has_value() && again->pieces == td->pieces);
  EDGELM_FUZZ_ASSERT(!edgelm::read_llama2c_tokenizer(bytes, n + 1).has_value());
  auto tok = edgelm::tokenizer::from_data(std::move(*td));
  EDGELM_FUZZ_ASSERT(tok.has_value());  // llama2.c types are inferred, so from_data has nothing to reject
  encode_decode(*tok, "Once upon a time, \xE2\x96\x81 <s> \xF0\x9F\x98\x80 \xFF\xFE");
  encode_decode(*tok, std::string_view(reinterpret_cast<const char*>(data), size < 1024 ? size : 1024));
  return 0;
}

// tests/fuzz/fuzz_tokenizer_encode.cpp - libFuzzer target: hostile *text* through the SentencePiece BPE
// tokenizer. The vocabulary is fixed (built below): all 256 byte-fallback tokens plus overlapping
// merges, so every input is encodable and decode(encode(text)) must give the text back exactly.
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-exceptions -I include \
//     tests/fuzz/fuzz_tokenizer_encode.cpp -o fuzz_tokenizer_encode
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <edgelm/tokenizer/sentencepiece.hpp>

#include "fuzz_common.hpp"

namespace {

edgelm::tokenizer_data vocabulary(bool space_prefix) {
  edgelm::tokenizer_data d;
  auto add = [&](std::string p, float score, edgelm::token_type t) {
    d.pieces.push_back(std::move(p));
    d.scores.push_back(score);
    d.types.push_back(t);
  };
  add("<unk>", 0, edgelm::token_type::unknown);
  add("<s>", 0, edgelm::token_type::control);
  add("</s>", 0, edgelm::token_type::control);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, 0, edgelm::token_type::byte);
  }
  // Normal pieces; no piece starts with two spaces, so the dummy prefix always decodes away.
  const char* merges[] = {" ", "a", "b", "c", "e", "h", "t", "n", "d", "s", "o", " t", "th", " th", "he", "the", " the", " a",
                          "an", " an", "and", " and", "ab", "abc", "abab", " ab", "\xC3\xA9", "\xF0\x9F\x98\x80", "\xE2\x96\x81",
                          "e ", "a a", "<s>", "\n", " \n", "ss", "sss", "ssss", "oo", "ooo"};
  float s = -1;
  for (const char* m : merges) add(m, s -= 0.5f, edgelm::token_type::normal);
  add("user", 0, edgelm::token_type::user_defined);
  add("unused", 0, edgelm::token_type::unused);
  d.max_token_length = 8;
  d.add_space_prefix = space_prefix;
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace edgelm_fuzz;
  static const auto with_prefix = edgelm::tokenizer::from_data(vocabulary(true));
  static const auto without_prefix = edgelm::tokenizer::from_data(vocabulary(false));
  EDGELM_FUZZ_ASSERT(with_prefix.has_value() && without_prefix.has_value());
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto ids = encode_decode(*with_prefix, text);
  // Every byte has a token, so nothing is lost: decoding gives the input back.
  EDGELM_FUZZ_ASSERT(with_prefix->decode(ids) == text);
  for (auto id : ids) EDGELM_FUZZ_ASSERT(id != 0 || text.empty());  // unk never needed
  auto ids2 = encode_decode(*without_prefix, text);
  EDGELM_FUZZ_ASSERT(ids2.size() <= text.size() + 1);  // merges only shrink the byte-level sequence
  auto with_eos = with_prefix->encode(text, false, true);
  EDGELM_FUZZ_ASSERT(!with_eos.empty() && with_eos.back() == with_prefix->eos());
  return 0;
}

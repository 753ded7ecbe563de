// tests/fuzz/fuzz_tokenizer_json.cpp - libFuzzer target: hostile tokenizer.json (+ tokenizer_config.json)
// through read_tokenizer_json and bpe_tokenizer::build. The input is the tokenizer.json text, optionally
// followed by "\n\x01\n" and a tokenizer_config.json. Whatever is accepted must then tokenize text (a fixed
// sample and the input itself) into in-range ids and decode without fault; so must the GGUF vocabulary that
// `edgelm quantize` would embed for it (gguf_vocab_of: "gpt2" or "llama" form), written and read back.
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-exceptions -I include \
//     tests/fuzz/fuzz_tokenizer_json.cpp -o fuzz_tokenizer_json
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <edgelm/formats/gguf_vocab.hpp>
#include <edgelm/quantize.hpp>
#include <edgelm/tokenizer/text_tokenizer.hpp>

#include <algorithm>
#include <vector>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t sep = in.find("\n\x01\n");
  const std::string_view tj = in.substr(0, sep), cfg = sep == std::string_view::npos ? std::string_view{} : in.substr(sep + 3);
  auto src = edgelm::read_tokenizer_json(tj, cfg);
  if (!src) {
    EDGELM_FUZZ_ASSERT(src.error().code != edgelm::errc::ok);
    return 0;
  }
  {
    std::int64_t max_id = -1;
    for (auto id : src->vocab_id) max_id = std::max<std::int64_t>(max_id, id);
    for (const auto& a : src->added) max_id = std::max<std::int64_t>(max_id, a.id);
    const auto rows = static_cast<std::uint32_t>(std::max<std::int64_t>(max_id + 3, 3));  // (a model padded past the tokenizer)
    if (auto td = edgelm::gguf_vocab_of(*src, rows)) {
      EDGELM_FUZZ_ASSERT(td->pieces.size() == rows);
      edgelm::gguf_writer w;
      std::vector<std::byte> file;
      if (edgelm::detail::write_vocab(w, *td, rows) &&
          w.write([&](std::span<const std::byte> b) { file.insert(file.end(), b.begin(), b.end()); return true; })) {
        if (auto g = edgelm::load_text_tokenizer(file)) {
          const auto ids = g->encode("Hello world <s> 123 caf\xC3\xA9 \xF0\x9F\x98\x80\n\n  x", true, true);
          for (auto id : ids) EDGELM_FUZZ_ASSERT(id >= 0 && static_cast<std::size_t>(id) < g->vocab_size());
          volatile std::size_t n = g->decode(ids).size();
          (void)n;
        }
      }
    } else {
      EDGELM_FUZZ_ASSERT(td.error().code == edgelm::errc::unsupported_architecture || td.error().code == edgelm::errc::bad_tokenizer);
    }
  }
  auto tok = edgelm::bpe_tokenizer::build(std::move(*src));
  if (!tok) return 0;
  const edgelm::text_tokenizer t(std::move(*tok));
  for (std::string_view text : {std::string_view("Hello world <s> 123 caf\xC3\xA9 \xF0\x9F\x98\x80\n\n  x"), in.substr(0, 4096)}) {
    for (bool special : {true, false}) {
      const auto ids = t.encode(text, special, special);
      for (auto id : ids) EDGELM_FUZZ_ASSERT(id >= 0 && static_cast<std::size_t>(id) < t.vocab_size());
      volatile std::size_t n = t.decode(ids, special).size();
      (void)n;
    }
  }
  return 0;
}

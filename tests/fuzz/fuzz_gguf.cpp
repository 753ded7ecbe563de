// tests/fuzz/fuzz_gguf.cpp - libFuzzer target: GGUF bytes through every reader that accepts them:
// parse_gguf, read_gguf, read_gguf_split (the input cut in two parts), read_gguf_tokenizer, then the full loader (f32 and q8_0 weights), a forward
// pass and the embedded tokenizer encoding the input itself.
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-exceptions -I include \
//     tests/fuzz/fuzz_gguf.cpp -o fuzz_gguf
//   ./fuzz_gguf -dict=tests/fuzz/gguf.dict -max_len=65536 corpus_dir tests/fuzz/corpus/fuzz_gguf
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include <edgelm/formats/gguf.hpp>
#include <edgelm/load.hpp>
#include <edgelm/precision/q8_0.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace edgelm_fuzz;
  const auto bytes = as_bytes(data, size);
  const std::string_view text(reinterpret_cast<const char*>(data), size < 4096 ? size : 4096);

  if (auto g = edgelm::parse_gguf(bytes)) {
    check_tensors(g->tensors, bytes);
    EDGELM_FUZZ_ASSERT(g->data_offset % g->alignment == 0);
  }
  if (auto mf = edgelm::read_gguf(edgelm::detail::own_bytes(edgelm::memory_storage::borrow(bytes)))) check_model_file(*mf);
  if (auto td = edgelm::read_gguf_tokenizer(bytes)) {
    check_tokenizer_data(*td);
    if (auto tt = edgelm::text_tokenizer::from_data(*td)) encode_decode(*tt, text);
    if (auto tok = edgelm::tokenizer::from_data(std::move(*td))) encode_decode(*tok, text);
  }
  // the input as the two parts of a split GGUF, cut where its first byte says
  if (size > 1) {
    const std::size_t cut = 1 + (size - 1) * data[0] / 256;
    std::vector<std::shared_ptr<edgelm::detail::byte_owner>> parts{edgelm::detail::own_bytes(edgelm::memory_storage::borrow(bytes.subspan(1, cut - 1))),
                                                                   edgelm::detail::own_bytes(edgelm::memory_storage::borrow(bytes.subspan(cut)))};
    const auto p0 = parts[0]->bytes(), p1 = parts[1]->bytes();
    if (auto mf = edgelm::read_gguf_split(std::move(parts))) {
      // every tensor view lies inside one of the parts (the first byte and the last read, for ASan)
      for (const auto& t : mf->tensors) {
        const auto in = [&](std::span<const std::byte> p) { return t.data >= p.data() && t.n_bytes <= p.size() && t.data - p.data() <= static_cast<std::ptrdiff_t>(p.size() - t.n_bytes); };
        EDGELM_FUZZ_ASSERT(t.n_bytes > 0 && (in(p0) || in(p1)));
        volatile std::byte first = t.data[0], last = t.data[t.n_bytes - 1];
        (void)first, (void)last;
      }
    }
  }
  if (auto m = edgelm::load<edgelm::f32>(edgelm::memory_storage::borrow(bytes))) run_model(*m, text);
  if (auto m = edgelm::load<edgelm::q8_0>(edgelm::memory_storage::borrow(bytes))) run_model(*m, text);
  return 0;
}

// tests/fuzz/fuzz_dequantize.cpp - libFuzzer target: hostile tensor bytes through every ggml row
// converter (dequantize_row: what the loader runs on tensors whose type differs from the model's
// precision), then the floats it produced - NaN, Inf, huge - back through the Q8_0 / Q4_0 quantizers.
// UBSan's float-cast-overflow and shift checks are the oracle; the output must be written in full.
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-exceptions -I include \
//     tests/fuzz/fuzz_dequantize.cpp -o fuzz_dequantize
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include <edgelm/precision/dequantize.hpp>
#include <edgelm/precision/q4_0.hpp>
#include <edgelm/precision/q8_0.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const auto type = static_cast<edgelm::ggml_type>(data[0] % edgelm::ggml_type_count);
  const auto* src = reinterpret_cast<const std::byte*>(data + 1);
  const std::size_t bytes = size - 1;
  if (!edgelm::can_dequantize(type)) {
    float dummy[256];
    EDGELM_FUZZ_ASSERT(!edgelm::dequantize_row(type, src, dummy, 0));
    return 0;
  }
  const auto& info = edgelm::ggml_info(type);
  const std::size_t n = bytes / info.type_size * info.block_size;
  std::vector<float> out(n + 1, 12345.0f);  // a sentinel after the row
  const bool ok = edgelm::dequantize_row(type, src, out.data(), n);
  EDGELM_FUZZ_ASSERT(out[n] == 12345.0f);
  if (n % info.block_size == 0 && n > 0 && info.block_size > 1) {
    // A count that is not a whole number of blocks is refused, not over-read.
    EDGELM_FUZZ_ASSERT(!edgelm::dequantize_row(type, src, out.data(), n - 1));
  }
  if (!ok) return 0;  // a NaN/Inf block scale: refused

  // The floats (possibly NaN/Inf from F32/F16/BF16 input) through the quantizers and back.
  std::vector<edgelm::block_q8_0> q8(edgelm::q8_0::blocks(n) + 1);
  std::vector<edgelm::block_q4_0> q4(edgelm::q4_0::blocks(n) + 1);
  std::memset(&q8.back(), 0xA5, sizeof q8.back());
  std::memset(&q4.back(), 0xA5, sizeof q4.back());
  edgelm::q8_0::quantize_row(out.data(), q8.data(), n);
  edgelm::q4_0::quantize_row(out.data(), q4.data(), n);
  EDGELM_FUZZ_ASSERT(reinterpret_cast<const unsigned char*>(&q8.back())[0] == 0xA5);
  EDGELM_FUZZ_ASSERT(reinterpret_cast<const unsigned char*>(&q4.back())[0] == 0xA5);
  std::vector<float> back(n + 1, 12345.0f);
  edgelm::q8_0::dequantize_row(q8.data(), back.data(), n);
  edgelm::q4_0::dequantize_row(q4.data(), back.data(), n);
  EDGELM_FUZZ_ASSERT(back[n] == 12345.0f);
  return 0;
}
